"""The delivery engine: one attempt of one delivery, as plain functions (no Celery here).

:func:`process` is what a ``webhooks.deliver`` task does, in three steps with the database
connection returned to the pool while the receiver is called:

1. :func:`claim` the delivery with one atomic ``UPDATE ... RETURNING``, committed before
   anything is sent. It matches only an open delivery that is due, whose endpoint is enabled,
   that no worker holds (``locked_until`` not in the future) and whose endpoint has fewer than
   ``WEBHOOKS_ENDPOINT_CONCURRENCY`` deliveries held. So a duplicated, stale or early message
   does nothing, and there is one attempt sequence per delivery however many messages exist.
   When the claim fails, :func:`settle_unclaimed` says why and acts: nothing (a duplicate),
   park (the endpoint is disabled: the delivery waits for it) or defer (the endpoint is at its
   in-flight cap: try later, with a delay that grows with the delivery's age, so a hung
   endpoint's backlog neither occupies the worker pool nor keeps bouncing through it).
2. Build the signed request (:func:`webhooks.messages.build_request`) and send it.
3. :func:`record` the attempt row and the delivery's new state in one transaction, and say
   what the caller has to do next (:class:`NextStep`): nothing, publish a retry, or publish
   a dead letter.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from webhooks import clock, history, retry
from webhooks.broker import MAX_COUNTDOWN, DeliveryRef
from webhooks.config import get_settings
from webhooks.db import session_scope
from webhooks.messages import OutgoingRequest, build_request, envelope
from webhooks.models import OPEN_STATUSES, Delivery, DeliveryStatus, Endpoint, Event
from webhooks.transport import Outcome, Transport

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
    with session_scope() as session:
        job = claim(session, delivery_id, now=clock.now())
        if job is None:
            return settle_unclaimed(session, delivery_id, now=clock.now(), rng=rng)
    started = clock.now()
    request = build_request(job.endpoint, job.body, at=started)
    outcome = transport.post(
        request.url, request.headers, request.body, job.endpoint.timeout_seconds
    )
    with session_scope() as session:
        step = record(session, job, request, outcome, started_at=started, rng=rng)
    _log_attempt(job, outcome, step)
    return step


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
            exists().where(Endpoint.id == Delivery.endpoint_id, Endpoint.enabled),
            in_flight < get_settings().endpoint_concurrency,
        )
        # A claim is not a change of state: updated_at stays.
        .values(locked_until=now + CLAIM_DURATION, updated_at=Delivery.updated_at)
        .returning(Delivery.attempts, Delivery.event_id, Delivery.endpoint_id),
        execution_options={"synchronize_session": False},
    ).first()
    if claimed is None:
        return None
    attempts, event_id, endpoint_id = claimed
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
    return step


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
    session: Session, endpoint: Endpoint, outcome: Outcome, now: datetime
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
    )
