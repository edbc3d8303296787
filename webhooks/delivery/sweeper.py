"""Putting back into the broker what is due there and is not: the durability of deliveries.

The database is the only record of what is due (``next_attempt_at``); a task message is a
hint to act on it now. Messages get lost (broker down at enqueue, process killed between
commit and publish, Redis flushed), and long retries are never published as countdowns (see
:data:`webhooks.broker.MAX_COUNTDOWN`). Beat runs the sweep every few seconds, and it
publishes every open delivery that is due and for which no message can be pending.

How it knows that, without a column of its own: ``locked_until`` is a lease on the delivery.
In the future it is a worker's claim (:mod:`webhooks.delivery`). In the past it records when
the delivery was last handed over, to the broker or to a worker: whoever publishes a message
stamps ``locked_until = now`` in the same transaction that makes the delivery due (ingest, a
short retry, the sweep itself), and a claim pushes it ahead. Such a past stamp does not stop a
claim, but it tells the sweeper a message may still be on its way, so a delivery is swept only
when its lease is NULL (a long retry, released or parked deliveries: nothing was published)
or ended more than ``WEBHOOKS_REPUBLISH_AFTER_SECONDS`` (180 s) ago: the message was lost,
or its worker died. A message merely waiting in a long queue is thus duplicated at most once
per window, and a duplicate is harmless: the claim lets only one through.

Dead letters get the same lease on failed deliveries (:func:`lost_dead_letters`).

Deliveries parked by their endpoint's controls (rate limit, FIFO, open circuit) have no due
time, so the sweep never scans them; each sweep instead lets go what their controls now allow
(:func:`webhooks.delivery.waiting.release_all`): the next rate-limit slots, a probe.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlalchemy.orm import Session

from webhooks.broker.publishing import (
    DeliveryRef,
    publish,
    publish_dead_letter,
)
from webhooks.core import clock
from webhooks.core.config import get_settings
from webhooks.core.db import session_scope
from webhooks.delivery import waiting
from webhooks.delivery.state import stamp
from webhooks.models import Delivery, DeliveryStatus

log = logging.getLogger("webhooks.sweeper")

BATCH = 500
"""Deliveries published per transaction of the sweep."""

MAX_BATCHES = 20
"""Batches per sweep; the next sweep, seconds later, carries on."""


def due_for_publishing(
    session: Session, *, now: datetime, limit: int, republish_after: timedelta
) -> list[DeliveryRef]:
    """Stamp and return up to ``limit`` due deliveries that no pending message covers.

    The rows are locked while stamped (``SKIP LOCKED``), so concurrent sweeps split the work
    instead of publishing the same deliveries twice. The caller publishes after committing.
    """
    lease_ended = or_(
        Delivery.locked_until.is_(None), Delivery.locked_until <= now - republish_after
    )
    return stamp(
        session, Delivery.next_attempt_at <= now, lease_ended, now=now, limit=limit, sweeping=True
    )


def sweep(*, now: datetime | None = None, republish_after: timedelta | None = None) -> int:
    """Publish what is due and not in the broker, in batches; returns how many were published.

    ``republish_after`` defaults to ``WEBHOOKS_REPUBLISH_AFTER_SECONDS``: longer than any
    countdown, so a short retry waiting in a worker's memory is not duplicated, and long
    enough that a moderate backlog is not either.
    """
    if republish_after is None:
        republish_after = timedelta(seconds=get_settings().republish_after_seconds)
    total = waiting.release_all(now=now or clock.now())
    for _ in range(MAX_BATCHES):
        with session_scope() as session:
            refs = due_for_publishing(
                session, now=now or clock.now(), limit=BATCH, republish_after=republish_after
            )
        total += publish(refs)
        if len(refs) < BATCH:
            break
    with session_scope() as session:
        lost = lost_dead_letters(
            session, now=now or clock.now(), limit=BATCH, republish_after=republish_after
        )
    if lost:
        log.warning("publishing %d dead letters again (never received): %s", len(lost), lost[0])
        for delivery_id in lost:
            publish_dead_letter(delivery_id)
    return total


def lost_dead_letters(
    session: Session, *, now: datetime, limit: int, republish_after: timedelta
) -> list[str]:
    """Stamp again and return failed deliveries whose dead letter never arrived.

    The same lease as for open deliveries: the worker stamps ``locked_until`` as it publishes
    the dead letter, :func:`webhooks.dead_letter.received` clears it, and a stamp older than
    ``republish_after`` means the message was lost (or is still queued, and arrives twice:
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
