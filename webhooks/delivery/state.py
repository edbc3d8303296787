"""A delivery's lease and state transitions: the one place that decides and writes them.

The state table (also in docs/reliability.md, "Delivery states")::

    status     next_attempt_at  locked_until   meaning
    pending    a time           NULL / past    due then; a past lease is the time it was last
    retrying                                   handed to the broker (a message may be queued)
    pending    a time           future         claimed: one worker is making an attempt
    retrying                                   (``claims`` is that claim's fencing token)
    pending    NULL             NULL           parked: waits for its disabled endpoint, or for
    retrying                                   its endpoint's controls (rate limit, FIFO, open
                                               circuit: webhooks.delivery.waiting)
    succeeded  NULL             NULL           finished
    failed     NULL             past / NULL    finished; a past lease is its dead letter's
                                               hand-over, cleared once the letter arrived

and ``hold`` says what set an open delivery's lease or due time when it was not a hand-over:
``claimed`` by a claim (with a past lease: a lapsed claim, whose message no queue holds any
more, which the sweeper publishes at once), ``deferred`` behind its endpoint's in-flight cap
(due then, or as soon as a success of the endpoint frees a slot: :func:`release_sql`).

Every writer goes through this module: ingest (:func:`new_delivery_sql`), the claim and the
record (:data:`CLAIM_SQL`, :data:`RECORD_SQL`, used by both storage paths), parking and
deferring a delivery that could not be claimed (:func:`settle_unclaimed`), releasing a
deferred one into the slot a success freed (:func:`release_sql`), the sweeper's and
redelivery's stamps (:func:`stamp`, :func:`redeliver`), enabling an endpoint
(:func:`release_waiting`), the delivery controls (:mod:`webhooks.delivery.waiting`: their
claim, parking and releases), dead letters (:func:`dead_letter_received`) and retention (which
only deletes finished rows).

Fencing: a claim adds one to ``claims`` and sets the lease, and the worker keeps both; the
record changes the delivery only while both are unchanged and the delivery is open. A worker
that ran past its lease and was overtaken by another claim keeps its attempt in the history,
marked ``stale``, and changes nothing else. A redeliver during a live claim sets
``redeliver_requested``; the record then makes the delivery pending and due at once instead
of writing the attempt's outcome, so the redeliver takes effect after the current attempt.

Times that leases and due times are compared with come from the database's clock
(:class:`Dialect`), never from the application host's: hosts whose clocks disagree still agree
on what is due and on who holds a claim.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, bindparam, literal_column, select, text, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from webhooks.broker.publishing import MAX_COUNTDOWN, DeliveryRef
from webhooks.core import clock
from webhooks.core.config import get_settings
from webhooks.core.db import POOL_TIMEOUT_SECONDS
from webhooks.core.dialects import POSTGRES, Dialect, session_dialect
from webhooks.delivery import retry
from webhooks.models import OPEN_STATUSES, Attempt, Delivery, DeliveryStatus, Endpoint, Event
from webhooks.models.base import UTCDateTime
from webhooks.outbound.outcome import Outcome

log = logging.getLogger("webhooks.delivery")


def db_now(session: Session) -> ColumnElement[datetime]:
    """The database's "now" as a Core expression, for statements built with SQLAlchemy."""
    return literal_column(session_dialect(session).now, type_=UTCDateTime())


# -- The lease --------------------------------------------------------------------------------

RECORD_MARGIN_SECONDS = 5.0
"""Time left, after the request's deadline and a connection wait, to write the record."""


def lease_seconds(timeout_seconds: float) -> float:
    """How long a claim holds: the request's whole deadline (name resolution included), one
    wait for a database connection and the record's statement. 20 s at the default 10 s
    timeout, 40 s at the largest (30 s)."""
    return timeout_seconds + POOL_TIMEOUT_SECONDS + RECORD_MARGIN_SECONDS


MAX_LEASE_SECONDS = lease_seconds(30)
"""The lease at the largest endpoint timeout; the claim statement reads each endpoint's."""


# -- What an attempt leads to -----------------------------------------------------------------

MAX_DEFER = 600.0
"""Longest wait, in seconds, for a delivery whose endpoint is at its in-flight cap."""

MIN_DEFER = 1.0
"""Shortest wait, in seconds, for a delivery whose endpoint is at its in-flight cap."""

LEASE_SPREAD = 0.5
"""How far past the end of a healthy endpoint's earliest live lease (as a fraction of the
time left until it) a delivery deferred behind the cap may come back: the deliveries waiting
for that slot come back spread out, not all at once (see :func:`defer_sql`)."""

INTERNAL_ERROR = "internal"
"""The attempt error of a failure on our side before anything was sent (an undecryptable
secret, a template that cannot render): it follows the schedule like any failed attempt."""


class Next(StrEnum):
    NOTHING = "nothing"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class NextStep:
    """What the caller schedules after an attempt (or a failed claim)."""

    action: Next
    delivery: DeliveryRef | None = None
    #: Seconds until the retry is due (``RETRY``).
    delay: float = 0.0

    @property
    def rides_countdown(self) -> bool:
        """Whether the caller publishes the retry now with a countdown (else: the sweeper)."""
        return self.action is Next.RETRY and rides_countdown(self.delay)


NOTHING = NextStep(Next.NOTHING)


def rides_countdown(delay: float) -> bool:
    return delay <= MAX_COUNTDOWN


@dataclass(frozen=True)
class Transition:
    """A delivery's next state after one attempt, as the record writes it."""

    status: DeliveryStatus
    step: NextStep
    #: Seconds from now until the next attempt is due; None when the delivery is finished.
    due_in: float | None
    #: Whether a message is handed over now (a retry's countdown, a dead letter): the
    #: lease is stamped with the time, for the sweeper.
    stamp: bool


def after_attempt(
    delivery: DeliveryRef,
    number: int,
    schedule: Sequence[int | float] | None,
    outcome: Outcome,
    *,
    now: datetime,
    rng: random.Random,
) -> Transition:
    """Done on 2xx; else a retry on the endpoint's schedule, or failed and a dead letter."""
    after = DeliveryRef(delivery.id, delivery.endpoint_id, delivery.event_type, number)
    if outcome.ok:
        return Transition(DeliveryStatus.SUCCEEDED, NOTHING, None, False)
    retry_after = None
    if outcome.status in retry.RETRY_AFTER_STATUSES:
        retry_after = retry.parse_retry_after(_header(outcome.headers, "Retry-After"), now)
    delay = retry.next_delay(schedule, number, retry_after=retry_after, rng=rng)
    if delay is None:
        return Transition(DeliveryStatus.FAILED, NextStep(Next.DEAD_LETTER, after), None, True)
    step = NextStep(Next.RETRY, after, delay)
    return Transition(DeliveryStatus.RETRYING, step, delay, step.rides_countdown)


def after_record(
    transition: Transition, written_status: str | None, delivery: DeliveryRef, number: int
) -> NextStep:
    """What follows, given the status the record wrote (None: a stale claim wrote nothing).

    ``pending`` after an attempt means a redeliver arrived while it was in flight: the
    delivery is due now and its message is the caller's to publish.
    """
    if written_status is None:
        return NOTHING
    if written_status == DeliveryStatus.PENDING:
        after = DeliveryRef(delivery.id, delivery.endpoint_id, delivery.event_type, number)
        return NextStep(Next.RETRY, after, 0.0)
    return transition.step


def _header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


# -- The claim and the record: one SQL for both storage paths ---------------------------------

_OPEN = "status IN ('pending', 'retrying')"

#: Open, due, and held by no worker (a lease in the past is only a hand-over stamp).
_UNHELD_AND_DUE = """
    d.status IN ('pending', 'retrying')
    AND d.next_attempt_at <= {now}
    AND (d.locked_until IS NULL OR d.locked_until <= {now})
"""

#: Claimable: unheld and due, the endpoint enabled and without delivery controls (a rate
#: limit, FIFO ordering, a circuit not closed: :func:`webhooks.delivery.waiting.take` claims
#: those), and fewer than ``:cap`` of the endpoint's deliveries held (spelled as
#: ``ix_deliveries_in_flight`` spells it).
_CLAIMABLE = (
    _UNHELD_AND_DUE
    + """
    AND e.enabled
    AND e.rate_limit IS NULL AND e.ordering <> 'fifo' AND e.circuit = 'closed'
    AND (SELECT count(*) FROM deliveries AS held
         WHERE held.endpoint_id = d.endpoint_id
           AND held.status IN ('pending', 'retrying')
           AND held.locked_until > {now}) < :cap
"""
)

#: The claim: a lease sized from the endpoint's timeout, and a new fencing token. A claim is
#: not a change of state: ``updated_at`` stays.
_CLAIM = """
    UPDATE deliveries AS d
    SET locked_until = {lease_end}, claims = d.claims + 1, hold = 'claimed'
    FROM endpoints AS e
    WHERE d.id = :id AND e.id = d.endpoint_id AND {claimable}
    RETURNING attempts, claims, locked_until AS lease, event_id, endpoint_id
"""


def claim_sql(db: Dialect) -> str:
    """The claim statement (``:id``, ``:cap``), returning attempts, claims, event and
    endpoint ids."""
    return _CLAIM.format(
        lease_end=db.later(":lease_base + e.timeout_seconds"),
        claimable=_CLAIMABLE.format(now=db.now),
    )


def claim_parameters(delivery_id: str) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "cap": get_settings().endpoint_concurrency,
        "lease_base": lease_seconds(0),
    }


def record_sql(db: Dialect) -> str:
    """The record's write of the delivery, fenced (``:delivery_id``, ``:claim``); returns
    the status written, no row for a stale claim.

    Parameters: :func:`record_parameters`.
    """
    return f"""
    UPDATE deliveries
    SET attempts = :attempt,
        last_status_code = :response_status,
        status = CASE WHEN redeliver_requested THEN 'pending' ELSE :status END,
        next_attempt_at = CASE WHEN redeliver_requested THEN {db.now}
                               WHEN :due_in IS NULL THEN NULL
                               ELSE {db.later(":due_in")} END,
        locked_until = CASE WHEN redeliver_requested OR :stamp THEN {db.now} END,
        redeliver_requested = false,
        hold = NULL,
        updated_at = {db.now}
    WHERE id = :delivery_id AND claims = :claim AND locked_until = :lease AND {_OPEN}
    RETURNING status
    """


def release_sql(db: Dialect, *, held: str) -> str:
    """After a successful attempt that held its claim (``held``, SQL): make the oldest of
    the endpoint's deliveries deferred behind its in-flight cap due now, stamped as handed
    to the broker; returns its id, attempts and event type, for the caller to publish.

    The attempt's record freed a slot of the cap, and a delivery that was deferred for
    want of one need not wait for its due time: so a backlog behind a full cap drains at
    the endpoint's pace, one freed slot releasing one delivery, instead of coming back at
    its deferred times (when a killed worker's claims held the slots, the leases' end, and
    the deliveries that find the cap full again then would wait for the next leases). Only
    on success: a failing endpoint's backlog keeps its deferral (see :func:`defer_sql`).
    Only deliveries not due yet (one due has its message on the way) of an endpoint
    without delivery controls, whose releases are :mod:`webhooks.delivery.waiting`'s.
    Concurrent releases skip each other's row.

    Parameters: ``:endpoint_id``, ``:ok``.
    """

    def waiting(row: str) -> str:
        return (
            f"{row}.hold = 'deferred' AND {row}.status IN ('pending', 'retrying')"
            f" AND {row}.next_attempt_at > {db.now} AND NOT {row}.admitted"
        )

    return f"""
    UPDATE deliveries AS d
    SET next_attempt_at = {db.now}, locked_until = {db.now}, hold = NULL
    WHERE d.id = (SELECT w.id FROM deliveries AS w
                  WHERE w.endpoint_id = :endpoint_id AND {waiting("w")}
                  ORDER BY w.id LIMIT 1 {db.skip_locked})
      AND {waiting("d")}
      AND EXISTS (SELECT 1 FROM endpoints AS e
                  WHERE e.id = d.endpoint_id AND e.enabled AND e.rate_limit IS NULL
                    AND e.ordering <> 'fifo' AND e.circuit = 'closed')
      AND :ok AND ({held})
    RETURNING id, attempts, (SELECT ev.type FROM events AS ev WHERE ev.id = event_id)
              AS event_type
    """


def health_sql(db: Dialect, *, held: str) -> str:
    """The endpoint's health after an attempt, computed from its row as it is now (so
    concurrent attempts serialise on it): ``failing_since`` set on the first failure and
    cleared on a success; disabled on 410 Gone or after failing for ``:disable_after``
    seconds. Only when ``held`` (SQL) is true: a stale attempt changes nothing.

    Parameters: ``:endpoint_id``, ``:ok``, ``:response_status``, ``:gone_reason``,
    ``:days``, ``:disable_after``; returns the reason of a disable it made.
    """
    failing_too_long = f"failing_since <= {db.later('0 - :disable_after')}"
    disable = f"(NOT :ok AND enabled AND (:response_status = 410 OR {failing_too_long}))"
    since = (
        "to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        if db is POSTGRES
        else "strftime('%Y-%m-%dT%H:%M:%SZ', failing_since)"
    )
    return f"""
    UPDATE endpoints
    SET failing_since = CASE WHEN :ok THEN NULL ELSE COALESCE(failing_since, {db.now}) END,
        enabled = CASE WHEN {disable} THEN false ELSE enabled END,
        disabled_reason = CASE
            WHEN NOT {disable} THEN disabled_reason
            WHEN :response_status = 410 THEN :gone_reason
            ELSE 'every attempt failed for ' || :days || ' days, since ' || {since} END,
        updated_at = CASE WHEN {disable} THEN {db.now} ELSE updated_at END
    WHERE id = :endpoint_id AND ({held})
      AND CASE WHEN :ok THEN failing_since IS NOT NULL
               ELSE failing_since IS NULL OR {disable} END
    RETURNING CASE WHEN enabled THEN NULL ELSE disabled_reason END AS disabled_reason
    """


def record_parameters(
    attempt: Mapping[str, Any], transition: Transition, *, claim: int, lease: object, ok: bool
) -> dict[str, Any]:
    """The parameters of a record's statements: the attempt row's columns
    (:func:`webhooks.history.recording.attempt_values` with ``id``, JSON as text), the
    transition, the claim's fencing token (its count and its lease, as the claim returned
    it) and what the endpoint's health needs."""
    days = get_settings().disable_after_days
    return {
        **attempt,
        "status": str(transition.status),
        "due_in": transition.due_in,
        "stamp": transition.stamp,
        "claim": claim,
        "lease": lease,
        "ok": ok,
        # Read only on a 410 (health_sql): not formatted for every other attempt.
        "gone_reason": (
            f"the receiver answered 410 Gone at {clock.rfc3339(clock.now())}"
            if attempt.get("response_status") == 410
            else None
        ),
        "days": days,
        "disable_after": float(days * 86_400),
    }


@dataclass(frozen=True)
class Written:
    """What a record wrote."""

    #: The delivery's status now; None when the claim was lost (the attempt is stale).
    status: str | None
    #: Why the endpoint was disabled by this attempt, if it was.
    disabled_reason: str | None
    #: A delivery deferred behind the endpoint's cap that the freed slot made due now
    #: (:func:`release_sql`): the caller publishes it.
    released: DeliveryRef | None = None


def released_delivery(endpoint_id: str, row: Mapping[Any, Any] | None) -> DeliveryRef | None:
    """The delivery :func:`release_sql` made due, from a row with its ``id``, ``event_type``
    and ``attempts`` (``id`` None, or no row: it released none), for the caller to publish."""
    if row is None or row["id"] is None:
        return None
    return DeliveryRef(row["id"], endpoint_id, row["event_type"], row["attempts"])


def written_before(session: Session, attempt_id: str) -> Written | None:
    """What an earlier try of a record wrote, if it committed: its attempt row exists and
    counted. The delivery's status is read back (a later writer may have changed it since:
    then it is theirs to follow up)."""
    status = session.execute(
        select(Delivery.status)
        .join(Attempt, Attempt.delivery_id == Delivery.id)
        .where(Attempt.id == attempt_id, Attempt.stale.is_(False))
    ).scalar()
    return None if status is None else Written(status, None)


# -- New deliveries ---------------------------------------------------------------------------


def new_deliveries_sql(db: Dialect, *, event: str) -> str:
    """Insert one delivery of the event ``event`` (a relation with ``id`` and ``tenant_id``)
    per row of ``targets (id, due)``; returns each one's id, endpoint and whether it is due.

    A due delivery is due now and stamped as handed to the broker (its message is published
    after the commit); the others (a disabled endpoint's, or one its controls hold back) are
    parked. Its id is
    ``dlv_``, the event's ULID time and 64 random bits, so it is a ULID too. ``:now`` is the
    creation time, the application's (as the ids' times are).
    """
    return f"""
    INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, status, attempts, claims,
                            redeliver_requested, next_attempt_at, locked_until,
                            created_at, updated_at)
    SELECT 'dlv_' || substr(new_event.id, 5, 10) || {db.random_hex},
           new_event.tenant_id, new_event.id, targets.id, 'pending', 0, 0, false,
           CASE WHEN targets.due THEN {db.now} END,
           CASE WHEN targets.due THEN {db.now} END,
           :now, :now
    FROM {event}, targets
    RETURNING id, endpoint_id, next_attempt_at IS NOT NULL AS due
    """


# -- After a failed claim ---------------------------------------------------------------------


def settle_unclaimed(session: Session, delivery_id: str, *, rng: random.Random) -> NextStep:
    """After a failed claim: ignore a duplicate, park for a disabled endpoint, or defer.

    Parking reads the endpoint under a share lock, and enabling takes the row's update lock
    before it releases parked deliveries (:func:`release_waiting`): one waits for the other,
    so no delivery is parked on an endpoint that was just enabled.
    """
    db = session_dialect(session)
    row = session.execute(
        text(
            f"""
            SELECT d.created_at, d.attempts, d.endpoint_id, ev.type
            FROM deliveries AS d JOIN events AS ev ON ev.id = d.event_id
            WHERE d.id = :id AND {_UNHELD_AND_DUE.format(now=db.now)}
            """
        ).columns(created_at=Delivery.created_at.type),
        {"id": delivery_id},
    ).one_or_none()
    if row is None:
        return NOTHING  # gone, finished, waiting, not due yet, or another worker has it
    enabled = endpoint_enabled(session, row.endpoint_id)
    still_unheld = f"d.id = :id AND {_UNHELD_AND_DUE.format(now=db.now)}"
    if not enabled:
        session.execute(
            text(
                "UPDATE deliveries AS d"
                " SET next_attempt_at = NULL, locked_until = NULL, hold = NULL "
                f"WHERE {still_unheld}"
            ),
            {"id": delivery_id},
        )
        return NOTHING
    age = (clock.now() - row.created_at).total_seconds()
    deferred = session.execute(
        text(defer_sql(db)),
        {
            "id": delivery_id,
            "endpoint_id": row.endpoint_id,
            "by_age": min(max(age, 1.0), MAX_DEFER) * rng.uniform(1.0, 1.5),
            "lease_spread": rng.uniform(1.0, 1.0 + LEASE_SPREAD),
            "floor": MIN_DEFER,
            "max_countdown": MAX_COUNTDOWN,
        },
    ).first()
    if deferred is None:
        return NOTHING
    ref = DeliveryRef(delivery_id, row.endpoint_id, row.type, row.attempts)
    log.info(
        "endpoint %s is at its in-flight cap: %s deferred %.1fs",
        ref.endpoint_id,
        delivery_id,
        deferred.delay,
    )
    return NextStep(Next.RETRY, ref, deferred.delay)


def defer_sql(db: Dialect) -> str:
    """Defer an unheld, due delivery (``:id``) of an endpoint (``:endpoint_id``) at its
    in-flight cap; returns the delay taken, in seconds.

    The delay grows with the delivery's age (``:by_age``, already jittered), so that a hung
    endpoint's backlog does not bounce through the broker every few seconds. An endpoint
    that is not failing (no ``failing_since``: its attempts succeed, so its slots free up as
    they end) is waited for no longer than until a slot is known to be free: the end of its
    earliest live lease (times ``:lease_spread``, a little over 1, so that the deliveries
    waiting for it do not all come back at the same instant), read on the database's clock
    in this very statement. Without that bound, the claims of a killed worker would hold
    the cap until their leases end, and deliveries deferred meanwhile would wait as long
    again as they are old. A failing endpoint (a hung one times out) keeps the age alone:
    its leases end only to be taken again, and its backlog would come back every lease.
    Never less than ``:floor``; stamped as handed over when the delay rides a countdown
    (``:max_countdown``). A rate-limit slot the delivery held is given up: it comes back
    after the slot has passed, and sent then it would go between the endpoint's slots, so
    it takes a new one (:func:`webhooks.delivery.waiting.take`).
    """
    live = f"""
        (SELECT min(held.locked_until) FROM deliveries AS held
         WHERE held.endpoint_id = :endpoint_id AND held.status IN ('pending', 'retrying')
           AND held.locked_until > {db.now})
    """
    return f"""
    UPDATE deliveries AS d
    SET next_attempt_at = {db.later("wait.delay")},
        locked_until = CASE WHEN wait.delay <= :max_countdown THEN {db.now} END,
        hold = 'deferred', admitted = false
    FROM (SELECT CASE WHEN bounded > :floor THEN bounded ELSE :floor END AS delay
          FROM (SELECT CASE WHEN lease_left < :by_age THEN lease_left ELSE :by_age END
                       AS bounded
                FROM (SELECT CASE WHEN e.failing_since IS NOT NULL THEN :by_age
                                  ELSE COALESCE({db.seconds_until(live)}, 0) * :lease_spread
                             END AS lease_left
                      FROM endpoints AS e WHERE e.id = :endpoint_id) AS left_) AS bounded_)
         AS wait
    WHERE d.id = :id AND {_UNHELD_AND_DUE.format(now=db.now)}
    RETURNING {db.seconds_until("next_attempt_at")} AS delay
    """


def endpoint_enabled(session: Session, endpoint_id: str) -> bool:
    """Whether the endpoint is enabled, read under a share lock held until the commit: an
    enabling in progress is waited for, and one that comes later waits for this
    transaction (see :func:`settle_unclaimed`)."""
    query = select(Endpoint.enabled).where(Endpoint.id == endpoint_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    return bool(session.scalar(query))


# -- Hand-overs: the sweeper, redelivery, enabling, dead letters -----------------------------


def release_waiting(session: Session, endpoint_id: str) -> int:
    """Make an endpoint's waiting deliveries due now, as far as its rate limit, ordering and
    circuit allow (:func:`webhooks.delivery.waiting.release`), publishing them after the
    commit.

    Call it in the transaction that enables the endpoint again; returns how many there were.
    The endpoint's row is locked first (see :func:`settle_unclaimed`).
    """
    from webhooks.delivery import waiting  # which builds on this module

    return len(waiting.release(session, endpoint_id))


def stamp(
    session: Session,
    *conditions: ColumnElement[bool],
    now: datetime | ColumnElement[datetime],
    limit: int | None = None,
    sweeping: bool = False,
    next_attempt_at: datetime | ColumnElement[datetime] | None = None,
    statuses: Sequence[DeliveryStatus] = OPEN_STATUSES,
    oldest_first: InstrumentedAttribute[datetime | None] = Delivery.next_attempt_at,
) -> list[DeliveryRef]:
    """Lock the deliveries in ``statuses`` (open ones by default) matching ``conditions``,
    stamp them as handed over ``now`` (a time, or :func:`db_now`).

    A sweep takes the oldest first (longest due; for dead letters, longest unreceived) and
    skips rows another sweep holds (it will publish them); a release must take every row it
    names, so it waits for locks instead.
    """
    query = (
        select(Delivery.id, Delivery.endpoint_id, Event.type, Delivery.attempts, Delivery.admitted)
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.status.in_(statuses), *conditions)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=sweeping)
    )
    if sweeping:
        query = query.order_by(oldest_first)
    refs = [
        DeliveryRef(delivery_id, endpoint_id, event_type, attempts, admitted=admitted)
        for delivery_id, endpoint_id, event_type, attempts, admitted in session.execute(query)
    ]
    if refs:
        values: dict[str, object] = {"locked_until": now, "hold": None}
        if next_attempt_at is None:
            values["updated_at"] = Delivery.updated_at  # a publish is not a change of state
        else:
            values["next_attempt_at"] = next_attempt_at
        session.execute(
            update(Delivery).where(Delivery.id.in_([ref.id for ref in refs])).values(values),
            execution_options={"synchronize_session": False},
        )
    return refs


def redeliver(session: Session, delivery_ids: Sequence[str]) -> list[DeliveryRef]:
    """Make these deliveries pending and due now, in any state; return those to publish.

    One held by a live claim is only marked: the record of that attempt makes it due when
    it finishes, and its worker publishes it then (see the module doc).
    """
    db = session_dialect(session)
    live = f"(status IN ('pending', 'retrying') AND COALESCE(locked_until > {db.now}, false))"
    rows = session.execute(
        text(
            f"""
            UPDATE deliveries
            SET redeliver_requested = {live},
                status = CASE WHEN {live} THEN status ELSE 'pending' END,
                next_attempt_at = CASE WHEN {live} THEN next_attempt_at ELSE {db.now} END,
                locked_until = CASE WHEN {live} THEN locked_until ELSE {db.now} END,
                hold = CASE WHEN {live} THEN hold END,
                admitted = CASE WHEN {live} THEN admitted ELSE false END,
                updated_at = {db.now}
            WHERE id IN :ids
            RETURNING id, endpoint_id, event_id, attempts, redeliver_requested
            """
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": list(delivery_ids)},
    ).all()
    event_ids = {row.event_id for row in rows}
    query = select(Event.id, Event.type).where(Event.id.in_(event_ids))
    types = {event_id: event_type for event_id, event_type in session.execute(query)}
    return [
        DeliveryRef(row.id, row.endpoint_id, types[row.event_id], row.attempts)
        for row in rows
        if not row.redeliver_requested
    ]


def dead_letter_received(session: Session, delivery_id: str) -> None:
    """Clear the hand-over stamp of a failed delivery's dead letter, which arrived."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.FAILED)
        .values(locked_until=None, updated_at=Delivery.updated_at),
        execution_options={"synchronize_session": False},
    )
