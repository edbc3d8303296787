"""The delivery engine: one attempt of one delivery, as plain functions (no Celery here).

:func:`process` is what a ``webhooks.deliver`` task does, in three steps with no database
connection held while the receiver is called:

1. Claim the delivery (:data:`webhooks.delivery.state.claim_sql`), committed before anything
   is sent. It matches only an open delivery that is due, whose endpoint is enabled, that no
   worker holds and whose endpoint has fewer than ``WEBHOOKS_ENDPOINT_CONCURRENCY``
   deliveries held; it takes a lease sized from the endpoint's timeout and a fencing token.
   So a duplicated, stale or early message does nothing, and there is one attempt sequence
   per delivery however many messages exist. An endpoint with delivery controls (a rate
   limit, FIFO ordering, a circuit not closed) is left out of it:
   :func:`webhooks.delivery.waiting.take` claims its deliveries, or holds them back, under
   the endpoint row's lock. When the claim fails,
   :func:`webhooks.delivery.state.settle_unclaimed` says why and acts: nothing (a
   duplicate), park (the endpoint is disabled) or defer (the endpoint is at its cap).
2. Build the signed, authenticated request and send it (:func:`webhooks.outbound.sending.send`).
   A failure on our side before sending (an undecryptable secret, a template that cannot
   render) is a failed attempt with the error ``internal``: it follows the schedule to
   ``failed`` and the dead letter instead of leaving the delivery open.
3. Record the attempt row, the delivery's new state and the endpoint's health, fenced by the
   claim, and say what the caller has to do next (:class:`NextStep`). A success frees a
   slot of the endpoint's in-flight cap: the record makes the oldest delivery deferred
   behind the cap due at once, and it is published here
   (:func:`webhooks.delivery.state.release_sql`). An attempt that
   changes the endpoint's controls (a failure, the first success after failures, any FIFO
   attempt) then counts into its circuit and lets go what that allows
   (:func:`webhooks.delivery.waiting.after_attempt`). A database error then
   is retried with the same attempt id until the record is written or the lease is over:
   the request was sent, and its attempt must not be lost.

The storage paths (:mod:`webhooks.delivery.postgres`, :mod:`webhooks.delivery.portable`) run
the same SQL and differ only in how they talk to the database.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from webhooks.broker import publishing
from webhooks.core import clock
from webhooks.core.config import get_settings
from webhooks.core.db import get_engine, is_unreachable, session_scope
from webhooks.core.errors import DatabaseUnavailable
from webhooks.core.ids import new_id
from webhooks.delivery import portable, postgres, state, waiting
from webhooks.delivery.job import EndpointConfig, Job
from webhooks.delivery.state import INTERNAL_ERROR, Next, NextStep, Transition, Written
from webhooks.delivery.waiting import FIFO, Verdict
from webhooks.history.recording import as_json_text, attempt_values
from webhooks.models import DeliveryStatus
from webhooks.outbound import sending
from webhooks.outbound.http import Transport
from webhooks.outbound.outcome import Outcome
from webhooks.outbound.request import OutgoingRequest

log = logging.getLogger("webhooks.delivery")

_RNG = random.Random()

RECORD_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)
"""Waits between tries of a record the database refused (then every 2 s, within the lease)."""


def process(
    delivery_id: str, transport: Transport, *, rng: random.Random | None = None
) -> NextStep:
    """Make one attempt of a delivery, if it is claimable, and record it."""
    rng = rng or _RNG
    claimed = claim(delivery_id)
    if claimed is None:
        taken = _take_controlled(delivery_id, rng)
        if isinstance(taken, NextStep):
            return taken
        claimed = Claimed.of(delivery_id, taken)
    started = clock.now()
    job, request, outcome = _attempt(claimed, transport, started)
    return record(claimed, job, request, outcome, started_at=started, rng=rng)


@dataclass(frozen=True)
class Claimed:
    """A claim taken: the row the attempt is built from, and when its lease ends."""

    delivery_id: str
    row: Mapping[str, Any]
    #: The lease's end on this process's monotonic clock.
    lease_ends: float

    @classmethod
    def of(cls, delivery_id: str, row: Mapping[str, Any]) -> Claimed:
        """The claim whose row ``row`` was just returned (its lease starts now)."""
        return cls(delivery_id, row, time.monotonic() + state.lease_seconds(row["timeout_seconds"]))

    def job(self, *, decrypt: bool = True) -> Job:
        return Job.from_row(self.delivery_id, self.row, decrypt=decrypt)


def claim(delivery_id: str) -> Claimed | None:
    """Claim the delivery for one attempt, or None if it is not for us now: then an endpoint
    under controls (rate limit, FIFO, circuit) may still give it to us
    (:func:`_take_controlled`)."""
    row = _store().claim(delivery_id)
    return None if row is None else Claimed.of(delivery_id, row)


def record(
    claimed: Claimed,
    job: Job,
    request: OutgoingRequest,
    outcome: Outcome,
    *,
    started_at: datetime,
    rng: random.Random,
) -> NextStep:
    """Record the attempt and the delivery's next state, fenced by the claim; what follows."""
    transition = state.after_attempt(
        job.delivery,
        job.number,
        job.endpoint.retry_schedule,
        outcome,
        now=clock.now(),
        rng=rng,
    )
    values = attempt_values(
        endpoint=job.endpoint,
        delivery_id=job.delivery.id,
        number=job.number,
        request=request,
        outcome=outcome,
        started_at=started_at,
    )
    attempt_id = new_id("att")
    parameters = state.record_parameters(
        {"id": attempt_id, **as_json_text(values)},
        transition,
        claim=job.claim,
        lease=job.lease,
        ok=outcome.ok,
    )
    store = _store()
    written = _until_written(lambda: store.record(parameters), attempt_id, claimed.lease_ends)
    step = state.after_record(transition, written.status, job.delivery, job.number)
    _log_attempt(job, outcome, step, written, transition)
    if written.released is not None:
        publishing.publish([written.released])
    if written.status is not None and _changes_controls(job.endpoint, outcome):
        finished = written.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)
        with session_scope() as session:
            waiting.after_attempt(session, job.endpoint.id, ok=outcome.ok, finished=finished)
    return step


def _take_controlled(delivery_id: str, rng: random.Random) -> Mapping[str, Any] | NextStep:
    """After the fast claim failed: claim a controlled endpoint's delivery, or hold it back
    (:func:`webhooks.delivery.waiting.take`); else settle it as any unclaimed delivery. Once
    committed, wake the endpoint if the take parked its deliveries beside another's."""
    with session_scope() as session:
        decision = waiting.take(session, delivery_id, cap=get_settings().endpoint_concurrency)
        taken = _follow(session, delivery_id, decision, rng)
    if decision.wake is not None:
        waiting.wake(decision.wake)
    return taken


def _follow(
    session: Session, delivery_id: str, decision: waiting.Decision, rng: random.Random
) -> Mapping[str, Any] | NextStep:
    """What a take's decision leaves the caller to do: the attempt, a countdown, nothing,
    or what any unclaimed delivery gets."""
    if decision.verdict is Verdict.TAKEN and decision.claimed is not None:
        return portable.load(session, decision.claimed)
    if decision.verdict is Verdict.ADMITTED and decision.delivery is not None:
        return NextStep(Next.RETRY, decision.delivery, decision.delivery.delay)
    if decision.verdict is Verdict.PARKED:
        return state.NOTHING
    return state.settle_unclaimed(session, delivery_id, rng=rng)


def _changes_controls(endpoint: EndpointConfig, outcome: Outcome) -> bool:
    """Whether the attempt counts into the endpoint's circuit or frees FIFO's next.

    A success after a success changes nothing (a circuit that is not closed has failures
    behind it, so ``failing_since`` is set), unless the endpoint is FIFO.
    """
    return not outcome.ok or endpoint.failing_since is not None or endpoint.ordering == FIFO


def _store() -> ModuleType:
    return postgres if get_engine().dialect.name == "postgresql" else portable


def _attempt(
    claimed: Claimed, transport: Transport, started: datetime
) -> tuple[Job, OutgoingRequest, Outcome]:
    """Build and send the request; an internal failure (a bug, an undecryptable secret, a
    template that cannot render) is its outcome: the transport reports every failure of the
    call itself as an :class:`Outcome`, so what raises here is ours."""
    try:
        job = claimed.job()
        request, outcome = sending.send(job.endpoint, job.body, transport, at=started)
    except Exception:
        log.exception("attempt of %s failed on our side", claimed.delivery_id)
        job = claimed.job(decrypt=False)
        request = OutgoingRequest(job.endpoint.url, {}, b"")
        return job, request, Outcome(None, {}, b"", INTERNAL_ERROR, 0)
    return job, request, outcome


def _until_written(record: Callable[[], Written], attempt_id: str, lease_ends: float) -> Written:
    """Run ``record`` until the database takes it, as long as the claim's lease lasts (and
    once more after it: a claim nobody took over still holds).

    A try whose reply was lost may have committed: the next one then finds the attempt row
    there (the same id) and the delivery no longer open, which is read back rather than
    taken for a lost claim.
    """
    delays = iter(RECORD_RETRY_DELAYS)
    retried = False
    while True:
        try:
            written = record()
        except (DBAPIError, DatabaseUnavailable, PoolTimeout) as exc:
            if isinstance(exc, DBAPIError) and not is_unreachable(exc):
                raise
            delay = next(delays, RECORD_RETRY_DELAYS[-1])
            if time.monotonic() + delay > lease_ends and retried:
                raise
            log.warning("recording an attempt failed (%s); trying again in %.2fs", exc, delay)
            time.sleep(delay)
            retried = True
            continue
        if written.status is None and retried:
            with session_scope() as session:
                return state.written_before(session, attempt_id) or written
        return written


def _log_attempt(
    job: Job, outcome: Outcome, step: NextStep, written: Written, transition: Transition
) -> None:
    """One readable line per attempt (outcome, status, duration, ids); never a header value
    (signatures, API keys), nor the body. Every extra field is named in the message, so the
    text format appends none of them a second time."""
    if written.status is None:
        then = "stale: the claim was lost, nothing changed"
    elif step.action is Next.RETRY:
        then = f"failed, retry in {step.delay:.0f}s"
    else:
        then = {Next.NOTHING: "succeeded", Next.DEAD_LETTER: "failed for good"}[step.action]
    if written.status == DeliveryStatus.PENDING and transition.status != DeliveryStatus.PENDING:
        then = "redelivered during the attempt: due again now"
    log.info(
        "attempt=%d delivery_id=%s %s: status=%s error=%s duration_ms=%d "
        "(event_id=%s event_type=%s endpoint_id=%s next=%s)",
        job.number,
        job.delivery.id,
        then,
        outcome.status,
        outcome.error,
        outcome.duration_ms,
        job.body["id"],
        job.delivery.event_type,
        job.delivery.endpoint_id,
        step.action.value,
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
            "stale": written.status is None,
        },
    )
    if written.disabled_reason is not None:
        log.warning("endpoint %s disabled: %s", job.delivery.endpoint_id, written.disabled_reason)
