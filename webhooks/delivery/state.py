"""A delivery's lease (``locked_until``) and the writes that hand a delivery over.

``locked_until`` in the future is a worker's claim; in the past it is the time the delivery
was last handed to the broker or a worker (see :mod:`webhooks.delivery.sweeper` for how the
sweeper reads it). Every writer that publishes a delivery stamps it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from webhooks.broker.publishing import DeliveryRef
from webhooks.core import clock
from webhooks.models import OPEN_STATUSES, Delivery, DeliveryStatus, Event


def release_waiting(session: Session, endpoint_id: str) -> int:
    """Make an endpoint's waiting deliveries due now (as far as its rate limit, ordering and
    circuit allow: :func:`webhooks.delivery.waiting.release`), publishing them after the commit.

    Call it in the transaction that enables the endpoint again; returns how many there were.
    """
    from webhooks.delivery import waiting  # which imports this module's neighbours

    return len(waiting.release(session, endpoint_id, now=clock.now()))


def stamp(
    session: Session,
    *conditions: ColumnElement[bool],
    now: datetime,
    limit: int | None = None,
    sweeping: bool = False,
    next_attempt_at: datetime | None = None,
    statuses: Sequence[DeliveryStatus] = OPEN_STATUSES,
    oldest_first: InstrumentedAttribute[datetime | None] = Delivery.next_attempt_at,
) -> list[DeliveryRef]:
    """Lock the deliveries in ``statuses`` (open ones by default) matching ``conditions``,
    stamp them as handed over now.

    A sweep takes the oldest first (longest due; for dead letters, longest unreceived) and
    skips rows another sweep holds (it will publish them); a release must take every row it
    names, so it waits for locks instead.
    """
    query = (
        select(Delivery.id, Delivery.endpoint_id, Event.type, Delivery.attempts)
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.status.in_(statuses), *conditions)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=sweeping)
    )
    if sweeping:
        query = query.order_by(oldest_first)
    refs = [DeliveryRef(*row) for row in session.execute(query)]
    if refs:
        values: dict[str, object] = {"locked_until": now}
        if next_attempt_at is None:
            values["updated_at"] = Delivery.updated_at  # a publish is not a change of state
        else:
            values["next_attempt_at"] = next_attempt_at
        session.execute(
            update(Delivery).where(Delivery.id.in_([ref.id for ref in refs])).values(values),
            execution_options={"synchronize_session": False},
        )
    return refs
