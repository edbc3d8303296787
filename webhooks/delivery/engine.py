"""The delivery engine: one attempt of one delivery, as plain functions (no Celery here).

:func:`process` is what a ``webhooks.deliver`` task does, in three steps with the database
connection returned to the pool while the receiver is called:

1. :func:`claim` the delivery with one atomic ``UPDATE ... RETURNING``, committed before
   anything is sent. It matches only an open delivery that is due, whose endpoint is enabled,
   that no worker holds (``locked_until`` not in the future) and whose endpoint has fewer than
   ``WEBHOOKS_ENDPOINT_CONCURRENCY`` deliveries held. So a duplicated, stale or early message
   does nothing, and there is one attempt sequence per delivery however many messages exist.
   An endpoint with delivery controls (a rate limit, FIFO ordering, a circuit not closed)
   is never claimed so: :func:`webhooks.delivery.waiting.take` claims its deliveries, or
   holds them back, under the endpoint row's lock.
   When the claim fails, :func:`settle_unclaimed` says why and acts: nothing (a duplicate),
   park (the endpoint is disabled: the delivery waits for it) or defer (the endpoint is at its
   in-flight cap: try later, with a delay that grows with the delivery's age, so a hung
   endpoint's backlog neither occupies the worker pool nor keeps bouncing through it).
2. Build the signed request (:func:`webhooks.messages.build_request`) and send it.
3. :func:`record` the attempt row and the delivery's new state in one transaction, and say
   what the caller has to do next (:class:`NextStep`): nothing, publish a retry, or publish
   a dead letter.

On Postgres, steps 1 and 3 are one statement each, committing on their own (:data:`_CLAIM`:
the claim and the load of the event and endpoint; :data:`_RECORD`: the attempt row and the
delivery's new state), with Core rows instead of ORM objects; an attempt that changes the
endpoint's health writes it in one transaction with the rest. The ORM functions below
(:func:`claim`, :func:`record`) are the same logic for any database.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from webhooks.broker.publishing import MAX_COUNTDOWN, DeliveryRef
from webhooks.core import clock, crypto
from webhooks.core.config import get_settings
from webhooks.core.db import autocommit_engine, get_engine, retry_on_disconnect, session_scope
from webhooks.core.ids import new_id
from webhooks.core.prepared import PreparedStatement
from webhooks.delivery import retry, waiting
from webhooks.delivery.waiting import FIFO, Verdict
from webhooks.history import recording as history
from webhooks.models import OPEN_STATUSES, Delivery, DeliveryStatus, Endpoint, Event
from webhooks.outbound import signing
from webhooks.outbound.http import Transport
from webhooks.outbound.outcome import Outcome
from webhooks.outbound.request import OutgoingRequest, build_request, envelope, redacted_headers

log = logging.getLogger("webhooks.delivery")

CLAIM_DURATION = timedelta(seconds=45)
"""How long a claim holds: the longest endpoint timeout (30 s) and a margin to record."""

CLOCK_TOLERANCE = timedelta(seconds=1)
"""Clock skew between hosts that a claim forgives: a message published by a host whose
clock is slightly ahead must not find its delivery "not due yet" and be dropped."""

MAX_DEFER = 600.0
"""Longest wait, in seconds, for a delivery whose endpoint is at its in-flight cap."""


class Next(StrEnum):
    NOTHING = "nothing"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class NextStep:
    """What the caller schedules after :func:`process`."""

    action: Next
    delivery: DeliveryRef | None = None
    #: Seconds until the retry is due (``RETRY``).
    delay: float = 0.0

    @property
    def rides_countdown(self) -> bool:
        """Whether the caller publishes the retry now with a countdown (else: the sweeper)."""
        return self.action is Next.RETRY and rides_countdown(self.delay)


NOTHING = NextStep(Next.NOTHING)

_RNG = random.Random()


@dataclass(frozen=True)
class Job:
    """A claimed delivery with all one attempt needs."""

    delivery: DeliveryRef
    #: This attempt's number, from 1.
    number: int
    endpoint: Endpoint
    body: dict[str, Any]


def rides_countdown(delay: float) -> bool:
    return delay <= MAX_COUNTDOWN


def process(
    delivery_id: str, transport: Transport, *, rng: random.Random | None = None
) -> NextStep:
    """Make one attempt of a delivery, if it is claimable, and record it."""
    rng = rng or _RNG
    if get_engine().dialect.name == "postgresql":
        return _process_postgres(delivery_id, transport, rng)
    with session_scope() as session:
        job = claim(session, delivery_id, now=clock.now())
    if job is None:
        taken = _take_controlled(delivery_id, rng)
        if isinstance(taken, NextStep):
            return taken
        job = taken
    started = clock.now()
    request = build_request(job.endpoint, job.body, at=started)
    outcome = transport.post(
        request.url, request.headers, request.body, job.endpoint.timeout_seconds
    )
    with session_scope() as session:
        step = record(session, job, request, outcome, started_at=started, rng=rng)
    _log_attempt(job, outcome, step)
    return step


# -- Postgres: one statement to claim, one to record, each committing on its own ---------------

#: The claim of :func:`claim` and the load of what the attempt needs, in one statement.
#: The predicates are :func:`_claimable`'s and the in-flight count's, spelled as the partial
#: indexes (``ix_deliveries_in_flight``) spell them. A claim is not a change of state:
#: ``updated_at`` stays.
_CLAIM = PreparedStatement(
    "webhooks_claim",
    """
    WITH claimed AS (
        UPDATE deliveries AS d SET locked_until = :until
        WHERE d.id = :id
          AND d.status IN ('pending', 'retrying')
          AND d.next_attempt_at <= :due
          AND (d.locked_until IS NULL OR d.locked_until <= :due)
          AND EXISTS (SELECT 1 FROM endpoints AS e
                      WHERE e.id = d.endpoint_id AND e.enabled AND e.rate_limit IS NULL
                        AND e.ordering <> 'fifo' AND e.circuit = 'closed')
          AND (SELECT count(*) FROM deliveries AS held
               WHERE held.endpoint_id = d.endpoint_id
                 AND held.status IN ('pending', 'retrying')
                 AND held.locked_until > :now) < :cap
        RETURNING d.attempts, d.event_id, d.endpoint_id
    )
    SELECT claimed.attempts, claimed.event_id, ev.type, ev.data, ev.timestamp,
           e.id, e.tenant_id, e.url, e.secret, e.previous_secret,
           e.previous_secret_expires_at, e.signature_header, e.api_key_header, e.api_key,
           e.headers, e.content_type, e.template, e.retry_schedule, e.timeout_seconds,
           e.failing_since, e.enabled
    FROM claimed
    JOIN events AS ev ON ev.id = claimed.event_id
    JOIN endpoints AS e ON e.id = claimed.endpoint_id
    """,
    (
        ("id", "text"),
        ("until", "timestamptz"),
        ("due", "timestamptz"),
        ("now", "timestamptz"),
        ("cap", "integer"),
    ),
)

#: :func:`record`'s attempt row and delivery update, in one statement. The attempt's id is
#: chosen before the first try, so a retry after a lost reply does not add a second row.
#: Prepared on its own autocommit connection (a success: the common case), as text in a
#: transaction (a failure: the endpoint's health is written too).
_RECORD = PreparedStatement(
    "webhooks_record",
    """
    WITH attempt AS (
        INSERT INTO attempts (id, tenant_id, delivery_id, endpoint_id, attempt, started_at,
                              duration_ms, request_url, request_headers, request_body,
                              response_status, response_headers, response_body, error)
        VALUES (:attempt_id, :tenant_id, :delivery_id, :endpoint_id, :number, :started_at,
                :duration_ms, :request_url, CAST(:request_headers AS jsonb), :request_body,
                :response_status, CAST(:response_headers AS jsonb), :response_body, :error)
        ON CONFLICT (id) DO NOTHING
    )
    UPDATE deliveries
    SET attempts = :number, last_status_code = :response_status, status = :status,
        locked_until = :locked_until, next_attempt_at = :next_attempt_at, updated_at = :now
    WHERE id = :delivery_id
    """,
    (
        ("attempt_id", "text"),
        ("tenant_id", "text"),
        ("delivery_id", "text"),
        ("endpoint_id", "text"),
        ("number", "integer"),
        ("started_at", "timestamptz"),
        ("duration_ms", "integer"),
        ("request_url", "text"),
        ("request_headers", "text"),
        ("request_body", "text"),
        ("response_status", "integer"),
        ("response_headers", "text"),
        ("response_body", "text"),
        ("error", "text"),
        ("status", "text"),
        ("locked_until", "timestamptz"),
        ("next_attempt_at", "timestamptz"),
        ("now", "timestamptz"),
    ),
)


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """What an attempt reads of an endpoint, with its secrets decrypted: the ORM's
    :class:`~webhooks.models.Endpoint` without the ORM (it is only read)."""

    id: str
    tenant_id: str
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    signature_header: str | None
    api_key_header: str | None
    api_key: str | None
    headers: dict[str, Any]
    content_type: str
    template: str | None
    retry_schedule: list[Any] | None
    timeout_seconds: int
    failing_since: datetime | None
    enabled: bool
    #: Always ``none``: the fast claim takes no FIFO endpoint's deliveries.
    ordering: str = "none"

    def signing_secrets(self, at: datetime) -> list[str]:
        """The secrets to sign with at ``at``, newest first (two during a rotation)."""
        return signing.active_secrets(
            self.secret, self.previous_secret, self.previous_secret_expires_at, at
        )


SECRET_CACHE_SECONDS = 300.0
"""How long a worker keeps a decrypted secret (keyed by its ciphertext) to skip Fernet."""

_SECRET_CACHE_SIZE = 4096
_decrypted: dict[str, tuple[str, float]] = {}


def _decrypt(token: str | None) -> str | None:
    """:func:`webhooks.crypto.decrypt`, remembered briefly per ciphertext.

    A Fernet token is unique to one encryption, so a rotated or edited secret is a new key
    here: nothing stale is ever served, and an entry lives at most
    :data:`SECRET_CACHE_SECONDS`.
    """
    if token is None:
        return None
    now = time.monotonic()
    hit = _decrypted.get(token)
    if hit is not None and hit[1] > now:
        return hit[0]
    plaintext = crypto.decrypt(token)
    if len(_decrypted) >= _SECRET_CACHE_SIZE:
        _decrypted.clear()
    _decrypted[token] = (plaintext, now + SECRET_CACHE_SECONDS)
    return plaintext


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _claim_postgres(connection: Connection, delivery_id: str, now: datetime) -> Job | None:
    row = _CLAIM.execute(
        connection,
        {
            "id": delivery_id,
            "until": now + CLAIM_DURATION,
            "due": now + CLOCK_TOLERANCE,
            "now": now,
            "cap": get_settings().endpoint_concurrency,
        },
    ).first()
    if row is None:
        return None
    attempts, event_id, event_type, data, timestamp = row[:5]
    endpoint = EndpointConfig(
        id=row[5],
        tenant_id=row[6],
        url=row[7],
        secret=cast(str, _decrypt(row[8])),
        previous_secret=_decrypt(row[9]),
        previous_secret_expires_at=_utc(row[10]),
        signature_header=row[11],
        api_key_header=row[12],
        api_key=_decrypt(row[13]),
        headers=row[14] or {},
        content_type=row[15],
        template=row[16],
        retry_schedule=row[17],
        timeout_seconds=row[18],
        failing_since=_utc(row[19]),
        enabled=row[20],
    )
    return Job(
        delivery=DeliveryRef(delivery_id, endpoint.id, event_type, attempts),
        number=attempts + 1,
        endpoint=cast(Endpoint, endpoint),
        body=envelope(event_id, event_type, cast(datetime, _utc(timestamp)), data),
    )


def _record_postgres(
    job: Job,
    request: OutgoingRequest,
    outcome: Outcome,
    *,
    attempt_id: str,
    started_at: datetime,
    rng: random.Random,
) -> NextStep:
    now = clock.now()
    step = next_step(job, outcome, now=now, rng=rng)
    locked_until: datetime | None = None
    next_attempt_at: datetime | None = None
    if outcome.ok:
        status = DeliveryStatus.SUCCEEDED
    elif step.action is Next.DEAD_LETTER:
        status = DeliveryStatus.FAILED
        locked_until = now  # the stamp of the dead letter the caller publishes
    else:
        status = DeliveryStatus.RETRYING
        next_attempt_at = now + timedelta(seconds=step.delay)
        if step.rides_countdown:
            locked_until = now  # the stamp of the message the caller publishes
    endpoint = job.endpoint
    has_response = outcome.status is not None
    params = {
        "attempt_id": attempt_id,
        "tenant_id": endpoint.tenant_id,
        "delivery_id": job.delivery.id,
        "endpoint_id": endpoint.id,
        "number": job.number,
        "started_at": started_at,
        "duration_ms": outcome.duration_ms,
        "request_url": request.url,
        "request_headers": _json(redacted_headers(request, endpoint)),
        "request_body": history.as_text(request.body),
        "response_status": outcome.status,
        "response_headers": _json(dict(outcome.headers) if has_response else None),
        "response_body": (
            history.as_text(outcome.body, history.MAX_RESPONSE_BODY) if has_response else None
        ),
        "error": outcome.error,
        "status": str(status),
        "locked_until": locked_until,
        "next_attempt_at": next_attempt_at,
        "now": now,
    }
    if not _changes_endpoint(job, outcome):
        # The common case: one statement, committing on its own.
        with autocommit_engine().connect() as connection:
            _RECORD.execute(connection, params)
        return step
    with session_scope() as session:  # a real transaction: the endpoint's health too
        session.execute(_RECORD.text, params)
        _update_endpoint_health(session, endpoint, outcome, now)
        _count_into_controls(session, job, outcome, step, now)
    return step


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _process_postgres(delivery_id: str, transport: Transport, rng: random.Random) -> NextStep:
    """:func:`process` on Postgres: two statements, each its own transaction, no ORM."""

    def claim_it() -> Job | None:
        with autocommit_engine().connect() as connection:
            return _claim_postgres(connection, delivery_id, clock.now())

    job = retry_on_disconnect(claim_it)
    if job is None:
        taken = _take_controlled(delivery_id, rng)
        if isinstance(taken, NextStep):
            return taken
        job = taken
    started = clock.now()
    request = build_request(job.endpoint, job.body, at=started)
    outcome = transport.post(
        request.url, request.headers, request.body, job.endpoint.timeout_seconds
    )
    attempt_id = new_id("att")

    def record_it() -> NextStep:
        return _record_postgres(
            job, request, outcome, attempt_id=attempt_id, started_at=started, rng=rng
        )

    step = retry_on_disconnect(record_it)
    _log_attempt(job, outcome, step)
    return step


# -- Any database: the ORM --------------------------------------------------------------------


def claim(session: Session, delivery_id: str, *, now: datetime) -> Job | None:
    """Take the delivery for one attempt, or None if it is not for us now (see module doc)."""
    held = aliased(Delivery)
    in_flight = (
        select(func.count())
        .where(
            held.endpoint_id == Delivery.endpoint_id,
            held.status.in_(OPEN_STATUSES),
            held.locked_until > now,
        )
        .scalar_subquery()
    )
    claimed = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            *_claimable(now),
            exists().where(
                Endpoint.id == Delivery.endpoint_id, Endpoint.enabled, *waiting.uncontrolled()
            ),
            in_flight < get_settings().endpoint_concurrency,
        )
        # A claim is not a change of state: updated_at stays.
        .values(locked_until=now + CLAIM_DURATION, updated_at=Delivery.updated_at)
        .returning(Delivery.id),
        execution_options={"synchronize_session": False},
    ).first()
    if claimed is None:
        return None
    return _load_job(session, delivery_id)


def _load_job(session: Session, delivery_id: str) -> Job:
    """What the attempt of a delivery just claimed needs (any database)."""
    attempts, event_id, endpoint_id = session.execute(
        select(Delivery.attempts, Delivery.event_id, Delivery.endpoint_id).where(
            Delivery.id == delivery_id
        )
    ).one()
    endpoint, event_type, data, timestamp = session.execute(
        select(Endpoint, Event.type, Event.data, Event.timestamp)
        .join(Event, Event.id == event_id)
        .where(Endpoint.id == endpoint_id)
    ).one()
    return Job(
        delivery=DeliveryRef(delivery_id, endpoint_id, event_type, attempts),
        number=attempts + 1,
        endpoint=endpoint,
        body=envelope(event_id, event_type, timestamp, data),
    )


def settle_unclaimed(
    session: Session, delivery_id: str, *, now: datetime, rng: random.Random
) -> NextStep:
    """After a failed claim: ignore a duplicate, park for a disabled endpoint, or defer."""
    row = session.execute(
        select(
            Delivery.created_at,
            Delivery.attempts,
            Delivery.endpoint_id,
            Event.type,
            Endpoint.enabled,
        )
        .join(Event, Event.id == Delivery.event_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.id == delivery_id, *_claimable(now))
    ).one_or_none()
    if row is None:
        return NOTHING  # gone, finished, waiting, not due yet, or another worker has it
    still_open = (Delivery.id == delivery_id, *_claimable(now))
    if not row.enabled:
        session.execute(
            update(Delivery).where(*still_open).values(next_attempt_at=None, locked_until=None)
        )
        return NOTHING
    age = (now - row.created_at).total_seconds()
    delay = min(max(age, 1.0), MAX_DEFER) * rng.uniform(1.0, 1.5)
    deferred = session.execute(
        update(Delivery)
        .where(*still_open)
        .values(
            next_attempt_at=now + timedelta(seconds=delay),
            locked_until=now if rides_countdown(delay) else None,
        )
        .returning(Delivery.id)
    ).first()
    if deferred is None:
        return NOTHING
    ref = DeliveryRef(delivery_id, row.endpoint_id, row.type, row.attempts)
    log.info(
        "endpoint %s is at its in-flight cap: %s deferred %.1fs",
        ref.endpoint_id,
        delivery_id,
        delay,
    )
    return NextStep(Next.RETRY, ref, delay)


def record(
    session: Session,
    job: Job,
    request: OutgoingRequest,
    outcome: Outcome,
    *,
    started_at: datetime,
    rng: random.Random,
) -> NextStep:
    """Store the attempt and the delivery's next state in ``session``'s transaction."""
    history.record_attempt(
        session,
        endpoint=job.endpoint,
        delivery_id=job.delivery.id,
        number=job.number,
        request=request,
        outcome=outcome,
        started_at=started_at,
    )
    now = clock.now()
    step = next_step(job, outcome, now=now, rng=rng)
    values: dict[str, Any] = {
        "attempts": job.number,
        "last_status_code": outcome.status,
        "locked_until": None,
        "next_attempt_at": None,
    }
    if outcome.ok:
        values["status"] = DeliveryStatus.SUCCEEDED
    elif step.action is Next.DEAD_LETTER:
        values["status"] = DeliveryStatus.FAILED
        values["locked_until"] = now  # the stamp of the dead letter the caller publishes
    else:
        values["status"] = DeliveryStatus.RETRYING
        values["next_attempt_at"] = now + timedelta(seconds=step.delay)
        if step.rides_countdown:
            values["locked_until"] = now  # the stamp of the message the caller publishes
    session.execute(
        update(Delivery).where(Delivery.id == job.delivery.id).values(values),
        execution_options={"synchronize_session": False},
    )
    _update_endpoint_health(session, job.endpoint, outcome, now)
    if _changes_endpoint(job, outcome):
        _count_into_controls(session, job, outcome, step, now)
    return step


def _changes_endpoint(job: Job, outcome: Outcome) -> bool:
    """Whether the attempt changes the endpoint: its health, its circuit, FIFO's next.

    A success after a success changes nothing (a circuit that is not closed has failures
    behind it, so ``failing_since`` is set), unless the endpoint is FIFO.
    """
    endpoint = job.endpoint
    return not outcome.ok or endpoint.failing_since is not None or endpoint.ordering == FIFO


def _count_into_controls(
    session: Session, job: Job, outcome: Outcome, step: NextStep, now: datetime
) -> None:
    finished = outcome.ok or step.action is Next.DEAD_LETTER
    waiting.after_attempt(session, job.endpoint.id, ok=outcome.ok, finished=finished, now=now)


def _take_controlled(delivery_id: str, rng: random.Random) -> Job | NextStep:
    """After the fast claim failed: claim a controlled endpoint's delivery (or hold it back),
    else settle it as any unclaimed delivery."""
    with session_scope() as session:
        now = clock.now()
        decision = waiting.take(
            session,
            delivery_id,
            now=now,
            lease=CLAIM_DURATION,
            tolerance=CLOCK_TOLERANCE,
            cap=get_settings().endpoint_concurrency,
        )
        if decision.verdict is Verdict.TAKEN:
            return _load_job(session, delivery_id)
        if decision.verdict is Verdict.ADMITTED and decision.delivery is not None:
            return NextStep(Next.RETRY, decision.delivery, decision.delivery.delay)
        if decision.verdict is Verdict.PARKED:
            return NOTHING
        return settle_unclaimed(session, delivery_id, now=now, rng=rng)


def next_step(job: Job, outcome: Outcome, *, now: datetime, rng: random.Random) -> NextStep:
    """What follows an attempt: done on 2xx, else a retry on schedule or the dead letter."""
    if outcome.ok:
        return NOTHING
    retry_after = None
    if outcome.status in retry.RETRY_AFTER_STATUSES:
        retry_after = retry.parse_retry_after(_header(outcome.headers, "Retry-After"), now)
    delay = retry.next_delay(
        job.endpoint.retry_schedule, job.number, retry_after=retry_after, rng=rng
    )
    after = DeliveryRef(
        job.delivery.id, job.delivery.endpoint_id, job.delivery.event_type, job.number
    )
    if delay is None:
        return NextStep(Next.DEAD_LETTER, after)
    return NextStep(Next.RETRY, after, delay)


def _update_endpoint_health(
    session: Session | Connection, endpoint: Endpoint, outcome: Outcome, now: datetime
) -> None:
    """Track ``failing_since``; disable on 410 Gone or after failing for too many days."""
    values: dict[str, Any] = {}
    if outcome.ok:
        if endpoint.failing_since is not None:
            values["failing_since"] = None
    else:
        failing_since = endpoint.failing_since or now
        if endpoint.failing_since is None:
            values["failing_since"] = now
        reason = _disable_reason(outcome, failing_since, now)
        if reason is not None and endpoint.enabled:
            values.update(enabled=False, disabled_reason=reason)
            log.warning("endpoint %s disabled: %s", endpoint.id, reason)
    if values:
        session.execute(
            update(Endpoint).where(Endpoint.id == endpoint.id).values(values),
            execution_options={"synchronize_session": False},
        )


def _disable_reason(outcome: Outcome, failing_since: datetime, now: datetime) -> str | None:
    if outcome.status == 410:
        return f"the receiver answered 410 Gone at {clock.rfc3339(now)}"
    days = get_settings().disable_after_days
    if now - failing_since >= timedelta(days=days):
        return f"every attempt failed for {days} days, since {clock.rfc3339(failing_since)}"
    return None


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Open, due, and held by no worker (a lease in the past is only a publish stamp)."""
    return (
        Delivery.status.in_(OPEN_STATUSES),
        Delivery.next_attempt_at <= now + CLOCK_TOLERANCE,
        or_(Delivery.locked_until.is_(None), Delivery.locked_until <= now + CLOCK_TOLERANCE),
    )


def _header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _log_attempt(job: Job, outcome: Outcome, step: NextStep) -> None:
    """One line per attempt; never a header value (signatures, API keys), nor the body."""
    if step.action is Next.RETRY:
        then = f"retry in {step.delay:.0f}s"
    else:
        then = {Next.NOTHING: "succeeded", Next.DEAD_LETTER: "failed for good"}[step.action]
    log.info(
        "attempt %d of %s event=%s type=%s endpoint=%s status=%s error=%s duration_ms=%d: %s",
        job.number,
        job.delivery.id,
        job.body["id"],
        job.delivery.event_type,
        job.delivery.endpoint_id,
        outcome.status,
        outcome.error,
        outcome.duration_ms,
        then,
        extra={
            "event_id": job.body["id"],
            "delivery_id": job.delivery.id,
            "endpoint_id": job.delivery.endpoint_id,
            "event_type": job.delivery.event_type,
            "attempt": job.number,
            "status": outcome.status,
            "error": outcome.error,
            "duration_ms": outcome.duration_ms,
            "next": step.action.value,
        },
    )
