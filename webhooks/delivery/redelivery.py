"""Sending deliveries again: one on request (redeliver), or an endpoint's failures (recover).

A redelivered delivery becomes ``pending`` and due now, whatever its state, and its history
stays: the next attempt is numbered on from the delivery's ``attempts`` count (attempt 4 after
three), because attempt numbers identify the rows of one delivery's history. As the retry
schedule is indexed by that number, a delivery that had used up its schedule gets exactly one
more attempt and is ``failed`` again (with a new dead letter) if that one fails too; one
redelivered while it still had retries left carries on with them.

The lease follows :mod:`webhooks.delivery.sweeper`: ``locked_until`` is stamped ``now`` in
the same transaction (a message is on its way) and the task is published after the commit,
so a lost message is republished by the sweeper. A delivery in flight (a worker's live
claim) is only marked: that attempt finishes and is recorded in the history, and the
delivery is then pending and due at once, its message published by that worker
(:mod:`webhooks.delivery.state`).
A delivery of a disabled endpoint is parked by the first worker that sees it and goes out
when the endpoint is enabled again.

Recovering works in the background, in batches (:func:`recover_batches`, the
``webhooks.recover`` task): an endpoint can have many thousands of failures, too many for one
request or one transaction. Which deliveries it covers is fixed when it is asked for: failed
deliveries of the endpoint created in the window and not after the request, walked by id from
newest to oldest, so a delivery that fails again while the recovery runs is not taken twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef, publish_after_commit
from webhooks.core import clock
from webhooks.core.db import session_scope
from webhooks.delivery import state
from webhooks.history.queries import CREATION_SLACK, Window
from webhooks.models import Delivery, DeliveryStatus, Endpoint

log = logging.getLogger("webhooks.redelivery")

RECOVER_TASK = "webhooks.recover"

RECOVER_BATCH = 500
"""Deliveries redelivered per transaction of a recovery."""


def redeliver_ids(session: Session, delivery_ids: list[str]) -> list[DeliveryRef]:
    """Make these deliveries pending and due now; publish them after the session commits.

    Returns the deliveries published; one in flight is left to its worker (see the module
    doc).
    """
    if not delivery_ids:
        return []
    refs = state.redeliver(session, delivery_ids)
    publish_after_commit(session, refs)
    return refs


def redeliver(session: Session, delivery: Delivery) -> None:
    """Queue ``delivery`` again (any state); the caller commits."""
    redeliver_ids(session, [delivery.id])
    session.refresh(delivery)


@dataclass(frozen=True)
class Recovery:
    """What one recovery covers: an endpoint's failed deliveries created in a window."""

    endpoint_id: str
    since: datetime
    #: The window's end; the time of the request when none was given.
    until: datetime

    @property
    def window(self) -> Window:
        return Window(self.since, self.until)

    def as_args(self) -> list[str]:
        """The task message's arguments (JSON)."""
        return [self.endpoint_id, clock.rfc3339(self.since), clock.rfc3339(self.until)]

    @classmethod
    def from_args(cls, endpoint_id: str, since: str, until: str) -> Recovery:
        return cls(endpoint_id, datetime.fromisoformat(since), datetime.fromisoformat(until))


def _failed_query(recovery: Recovery) -> Select[str]:
    return select(Delivery.id).where(
        Delivery.endpoint_id == recovery.endpoint_id,
        Delivery.status == DeliveryStatus.FAILED,
        *recovery.window.conditions(Delivery.id, Delivery.created_at, "dlv", CREATION_SLACK),
    )


def count_failed(session: Session, recovery: Recovery) -> int:
    """How many deliveries ``recovery`` will redeliver, as of now."""
    return session.scalar(select(func.count()).select_from(_failed_query(recovery).subquery())) or 0


def start_recovery(
    session: Session, endpoint: Endpoint, since: datetime, until: datetime | None = None
) -> int:
    """Count an endpoint's failed deliveries in the window and start redelivering them.

    Returns the count. The work is a ``webhooks.recover`` task, sent now (nothing in the
    session needs committing first).
    """
    recovery = Recovery(endpoint.id, since, until or clock.now())
    count = count_failed(session, recovery)
    if count:
        send_recovery(recovery)
    return count


def send_recovery(recovery: Recovery) -> None:
    """Publish the ``webhooks.recover`` task (tests replace this to run it inline).

    With the broker down, the recovery runs here instead: it only writes to the database,
    and the sweeper publishes the redelivered deliveries once the broker is back.
    """
    try:
        app = broker.celery_app()
        app.send_task(RECOVER_TASK, args=recovery.as_args(), queue=broker.RETRIES_QUEUE)
    except Exception:
        log.exception("could not publish %s; recovering in this process", RECOVER_TASK)
        recover_batches(recovery)


def recover_batches(recovery: Recovery, *, batch: int = RECOVER_BATCH) -> int:
    """Redeliver every delivery ``recovery`` covers, ``batch`` per transaction; returns how
    many. Deliveries are walked by id, newest first, each batch after the last one's end."""
    total = 0
    after: str | None = None
    while True:
        with session_scope() as session:
            query = _failed_query(recovery).order_by(Delivery.id.desc()).limit(batch)
            if after is not None:
                query = query.where(Delivery.id < after)
            ids = list(session.scalars(query))
            total += len(redeliver_ids(session, ids))
        if len(ids) < batch:
            break
        after = ids[-1]
    log.info("recovered %d failed deliveries of endpoint %s", total, recovery.endpoint_id)
    return total
