"""Putting back into the broker what is due there and is not: the durability of deliveries.

The database is the only record of what is due (``next_attempt_at``); a task message is a
hint to act on it now. Messages get lost (broker down at enqueue, process killed between
commit and publish, Redis flushed or restarted without persistence, a killed worker's
messages stuck in kombu's unacked hash until the visibility timeout), and long retries are
never published as countdowns (see :data:`webhooks.broker.publishing.MAX_COUNTDOWN`). Beat runs the
sweep every few seconds, on a queue of its own, and it publishes every open delivery that is
due and whose message the broker no longer holds.

How it knows that, without reading the queues' contents: ``locked_until`` is a lease on the
delivery. In the future it is a worker's claim (:mod:`webhooks.delivery.engine`). In the past
it records when the delivery was last handed over, to the broker or to a worker: whoever
publishes a message stamps ``locked_until = now`` in the same transaction that makes the
delivery due (ingest, a short retry, the sweep itself), and a claim pushes it ahead. So:

- A lease that is NULL (a long retry, released or parked deliveries) means nothing was
  published: a due one is published.
- The deliveries that are due, unclaimed and stamped are the ones with a message on its way,
  or lost. A broker queue is first in, first out and a delivery's message goes to the queue
  :attr:`~webhooks.broker.publishing.DeliveryRef.queue` names, so of a queue's ``n`` ready
  messages (:func:`webhooks.broker.inspection.queue_depths`) the ``n`` most recently stamped
  of its deliveries are the ones the broker still holds; the older ones were taken by a
  worker that died, or lost with the broker's memory, and are published again.
- A lapsed claim (``hold`` is ``claimed``: a worker took its message, claimed it and never
  recorded an attempt, as when it was killed) has no message left in the queue, whatever
  the queue holds: it is published on the first sweep after its lease ended, and it does
  not count among the stamped deliveries the queue's messages are matched with.

An honest backlog is thus never republished, however long (the count matches), and what the
broker lost goes out on the next sweep. The count is approximate at the edges: a message
published or taken while the sweep counts, a worker's reserved message whose claim is a few
milliseconds away, a stale duplicate still queued. The first kinds cost a duplicate message
(the claim makes it harmless); a duplicate in the queue hides a lost delivery until the queue
has drained past it. When the broker cannot be asked, the sweeper falls back to a window:
a stamp older than ``WEBHOOKS_REPUBLISH_AFTER_SECONDS`` (180 s) means the message was lost.

One sweep runs at a time (a Postgres advisory lock): sweeps queued while no worker ran, or a
slow one overtaken by the next, would otherwise count the same broker twice and publish the
same deliveries twice.

Dead letters get the same lease on failed deliveries (:func:`lost_dead_letters`), with the
window: they are few, and not bound by the 30 s promise.

Dead letters get the same lease on failed deliveries (:func:`lost_dead_letters`).

Deliveries parked by their endpoint's controls (rate limit, FIFO, open circuit) have no due
time, so the sweep never scans them; each sweep instead lets go what their controls now allow
(:func:`webhooks.delivery.waiting.release_all`): the next rate-limit slots, a probe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, text
from sqlalchemy.orm import Session

from webhooks.broker import inspection
from webhooks.broker.publishing import (
    DELIVERIES_QUEUE,
    RETRIES_QUEUE,
    DeliveryRef,
    publish,
    publish_dead_letter,
)
from webhooks.core import clock
from webhooks.core.config import get_settings
from webhooks.core.db import get_engine, session_scope
from webhooks.delivery import waiting
from webhooks.delivery.state import stamp
from webhooks.models import OPEN_STATUSES, Delivery, DeliveryStatus, Hold

log = logging.getLogger("webhooks.sweeper")

BATCH = 500
"""Deliveries published per transaction of the sweep."""

MAX_BATCHES = 20
"""Batches per sweep; the next sweep, seconds later, carries on."""

QUEUE_OF: Mapping[str, ColumnElement[bool]] = {
    DELIVERIES_QUEUE: (Delivery.attempts == 0) & ~Delivery.admitted,
    RETRIES_QUEUE: (Delivery.attempts > 0) | Delivery.admitted,
}
"""Which deliveries' messages each queue holds, as :attr:`DeliveryRef.queue` routes them."""

_LOCK_KEY = 0x5745_4248_5357_4550  # "WEBHSWEP": the advisory lock of the one running sweep


def held_messages() -> dict[str, int] | None:
    """The ready messages of each delivery queue, or None when the broker does not answer."""
    try:
        return inspection.queue_depths(QUEUE_OF)
    except Exception as exc:
        log.warning("sweep: the broker did not say what it holds (%s); using the window", exc)
        return None


def due_for_publishing(
    session: Session,
    *,
    now: datetime,
    limit: int,
    held: Mapping[str, int] | None,
    stamped_before: datetime,
    republish_after: timedelta,
) -> list[DeliveryRef]:
    """Stamp and return up to ``limit`` due deliveries whose message the broker does not hold.

    ``held`` is :func:`held_messages`, read after ``stamped_before`` (the sweep's start):
    deliveries stamped since then, this sweep's own publishes among them, are not counted
    against it. The rows are locked while stamped (``SKIP LOCKED``, so a claim in progress
    is not waited for). The caller publishes after committing.
    """
    if held is None:
        lost: ColumnElement[bool] = or_(
            Delivery.locked_until <= now - republish_after,
            and_(Delivery.hold == Hold.CLAIMED, Delivery.locked_until < stamped_before),
        )
    else:
        lost = or_(
            *(
                _not_held(condition, held.get(queue, 0), now=now, stamped_before=stamped_before)
                for queue, condition in QUEUE_OF.items()
            )
        )
    return stamp(
        session,
        Delivery.next_attempt_at <= now,
        or_(Delivery.locked_until.is_(None), lost),
        now=now,
        limit=limit,
        sweeping=True,
    )


def _not_held(
    queue: ColumnElement[bool], held: int, *, now: datetime, stamped_before: datetime
) -> ColumnElement[bool]:
    """Due, unclaimed, stamped deliveries of one queue, except the ``held`` stamped last;
    and its lapsed claims, which no message in the queue stands for."""
    unclaimed = (queue, Delivery.locked_until < stamped_before)
    if held == 0:  # the queue is empty (flushed, restarted, or drained): every one of them
        return and_(*unclaimed)
    handed_over = or_(Delivery.hold.is_(None), Delivery.hold != Hold.CLAIMED)
    stamped = (
        select(Delivery.id)
        .where(
            Delivery.status.in_(OPEN_STATUSES),
            Delivery.next_attempt_at <= now,
            *unclaimed,
            handed_over,
        )
        .order_by(Delivery.locked_until.desc(), Delivery.id.desc())
        .offset(held)
    )
    return or_(Delivery.id.in_(stamped), and_(*unclaimed, Delivery.hold == Hold.CLAIMED))


def sweep(*, now: datetime | None = None, republish_after: timedelta | None = None) -> int:
    """Publish what is due and not in the broker, in batches; returns how many were published.

    ``republish_after`` defaults to ``WEBHOOKS_REPUBLISH_AFTER_SECONDS``: the window for dead
    letters, and for deliveries when the broker cannot be asked what it holds.
    """
    if republish_after is None:
        republish_after = timedelta(seconds=get_settings().republish_after_seconds)
    with _alone() as running:
        if not running:
            log.info("sweep: another sweep is running; leaving it the work")
            return 0
        started = now or clock.now()
        held = held_messages()
        total = waiting.release_all(now=now or clock.now())
        for _ in range(MAX_BATCHES):
            with session_scope() as session:
                refs = due_for_publishing(
                    session,
                    now=now or clock.now(),
                    limit=BATCH,
                    held=held,
                    stamped_before=started,
                    republish_after=republish_after,
                )
            total += publish(refs)
            if len(refs) < BATCH:
                break
        with session_scope() as session:
            lost = lost_dead_letters(
                session, now=now or clock.now(), limit=BATCH, republish_after=republish_after
            )
    if total:
        log.info("sweep: published %d deliveries the broker did not hold (%s)", total, held)
    if lost:
        log.warning("publishing %d dead letters again (never received): %s", len(lost), lost[0])
        for delivery_id in lost:
            publish_dead_letter(delivery_id)
    return total


@contextmanager
def _alone() -> Iterator[bool]:
    """Whether this sweep is the only one running (always, on a database without locks)."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        locked = bool(
            connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY})
        )
        connection.commit()
        try:
            yield locked
        finally:
            if locked:
                try:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                    connection.commit()
                except Exception:
                    # Not back into the pool still holding the lock: closing it releases it.
                    connection.invalidate()
                    raise


def lost_dead_letters(
    session: Session, *, now: datetime, limit: int, republish_after: timedelta
) -> list[str]:
    """Stamp again and return failed deliveries whose dead letter never arrived.

    The same lease as for open deliveries: the worker stamps ``locked_until`` as it publishes
    the dead letter, :func:`webhooks.delivery.dead_letter.received` clears it, and a stamp older
    than ``republish_after`` means the message was lost (or is still queued, and arrives twice:
    dead letters are at-least-once anyway).
    """
    refs = stamp(
        session,
        Delivery.locked_until.is_not(None),
        Delivery.locked_until <= now - republish_after,
        now=now,
        limit=limit,
        sweeping=True,
        statuses=(DeliveryStatus.FAILED,),
        oldest_first=Delivery.locked_until,
    )
    return [ref.id for ref in refs]
