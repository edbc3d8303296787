"""Reading the execution history: deliveries and attempts, filtered, for keyset paging.

Each function returns a ``Select`` that :func:`webhooks.history.pagination.page` pages newest first
by id. Time windows (``since``/``until``) are turned into bounds on the id as well as on the
time column: ids are ULIDs, whose first 48 bits are the creation time in milliseconds, so
``id >= floor(since)`` lets the planner walk the ``(endpoint_id, status, id)``,
``(endpoint_id, id)`` and ``(tenant_id, id)`` indexes straight to the window instead of
filtering a whole endpoint's history row by row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Integer, Select, and_, literal_column, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from webhooks.core.errors import NotFound
from webhooks.models import Attempt, Delivery, DeliveryStatus, Event

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

#: Attempt outcomes a run history can be filtered on.
ATTEMPT_STATUSES = ("succeeded", "failed")

RECORDING_SLACK = timedelta(seconds=60)
"""How much later than ``started_at`` an attempt's id may be minted: it is made when the
outcome is recorded, after at most the longest timeout (30 s) plus the time to record."""

CREATION_SLACK = timedelta(seconds=1)
"""Between a delivery's id and its ``created_at`` (both taken as the row is flushed)."""


def id_floor(prefix: str, at: datetime) -> str:
    """The smallest id with ``prefix`` minted at ``at`` (or later): a ULID with no random bits."""
    ms = max(int(at.timestamp() * 1000), 0)
    chars = []
    for _ in range(10):
        ms, index = divmod(ms, 32)
        chars.append(_CROCKFORD[index])
    return f"{prefix}_{''.join(reversed(chars))}{'0' * 16}"


@dataclass(frozen=True)
class Window:
    """A time range, either end open."""

    since: datetime | None = None
    until: datetime | None = None

    def conditions(
        self,
        id_column: InstrumentedAttribute[str],
        time_column: InstrumentedAttribute[datetime],
        prefix: str,
        slack: timedelta,
    ) -> list[ColumnElement[bool]]:
        """``since <= time_column <= until``, plus the id bounds that make it an index range.

        ``slack`` is how much later than ``time_column`` a row's id may have been minted.
        """
        where: list[ColumnElement[bool]] = []
        if self.since is not None:
            where += [id_column >= id_floor(prefix, self.since), time_column >= self.since]
        if self.until is not None:
            where.append(time_column <= self.until)
            try:
                upper = self.until + slack + timedelta(milliseconds=1)
            except OverflowError:  # 9999-12-31: later than any id, the time bound will do
                return where
            where.append(id_column < id_floor(prefix, upper))
        return where


def deliveries_query(
    tenant_id: str,
    *,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    status: str | None = None,
    event_type: str | None = None,
    window: Window = Window(),
) -> Select[Delivery]:
    """A tenant's deliveries, optionally of one endpoint, one event, in one state, of one event
    type, in a window of creation times. The filters combine."""
    query = select(Delivery).where(Delivery.tenant_id == tenant_id)
    if event_type is not None:
        query = query.join(Event, Event.id == Delivery.event_id).where(Event.type == event_type)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if event_id is not None:
        query = query.where(Delivery.event_id == event_id)
    if status is not None:
        query = query.where(Delivery.status == DeliveryStatus(status))
    return query.where(*window.conditions(Delivery.id, Delivery.created_at, "dlv", CREATION_SLACK))


def events_query(tenant_id: str, *, event_type: str | None = None) -> Select[Event]:
    """A tenant's events, optionally of one type (to page through)."""
    query = select(Event).where(Event.tenant_id == tenant_id)
    if event_type is not None:
        query = query.where(Event.type == event_type)
    return query


def get_event(session: Session, tenant_id: str, event_id: str) -> Event:
    """The tenant's event ``event_id``; another tenant's is not found."""
    event = session.scalar(events_query(tenant_id).where(Event.id == event_id))
    if event is None:
        raise NotFound(f"no event {event_id!r}")
    return event


def deliveries_of_events(session: Session, event_ids: Sequence[str]) -> dict[str, list[Delivery]]:
    """The deliveries of each of ``event_ids`` (oldest first), with one query."""
    by_event: dict[str, list[Delivery]] = defaultdict(list)
    if event_ids:
        query = select(Delivery).where(Delivery.event_id.in_(list(event_ids)))
        for delivery in session.scalars(query.order_by(Delivery.id)):
            by_event[delivery.event_id].append(delivery)
    return by_event


def get_delivery(session: Session, tenant_id: str, delivery_id: str) -> Delivery:
    """The tenant's delivery ``delivery_id``; another tenant's is not found."""
    delivery = session.scalar(
        select(Delivery).where(Delivery.tenant_id == tenant_id, Delivery.id == delivery_id)
    )
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id!r}")
    return delivery


#: The 2xx range's bounds as SQL literals, not parameters: a statement run with a generic plan
#: (:func:`webhooks.core.prepared.generic`) matches ``ix_attempts_failed``'s predicate only so.
_OK_FROM = literal_column("200", Integer)
_OK_BELOW = literal_column("300", Integer)


def attempt_succeeded() -> ColumnElement[bool]:
    """An attempt that got a 2xx in time (as :attr:`webhooks.outbound.outcome.Outcome.ok`)."""
    return and_(
        Attempt.error.is_(None),
        Attempt.response_status >= _OK_FROM,
        Attempt.response_status < _OK_BELOW,
    )


def attempt_failed() -> ColumnElement[bool]:
    """Any other attempt: an error, no response, or a status other than 2xx."""
    # Spelled as the predicate of the partial index ix_attempts_failed, so that it is used.
    return or_(
        Attempt.error.is_not(None),
        Attempt.response_status < _OK_FROM,
        Attempt.response_status >= _OK_BELOW,
        Attempt.response_status.is_(None),
    )


def delivery_attempts_query(delivery_id: str) -> Select[Attempt]:
    """The attempts of one delivery (the caller has checked the delivery is the tenant's)."""
    return select(Attempt).where(Attempt.delivery_id == delivery_id)


def endpoint_attempts_query(
    endpoint_id: str, *, status: str | None = None, window: Window = Window()
) -> Select[Attempt]:
    """An endpoint's run history: every request made to it, PINGs included.

    ``status`` is ``succeeded`` (a 2xx in time) or ``failed`` (anything else); the window is
    on ``started_at``.
    """
    query = select(Attempt).where(Attempt.endpoint_id == endpoint_id)
    if status == "succeeded":
        query = query.where(attempt_succeeded())
    elif status == "failed":
        query = query.where(attempt_failed())
    elif status is not None:
        raise ValueError(f"unknown attempt status {status!r}")
    return query.where(*window.conditions(Attempt.id, Attempt.started_at, "att", RECORDING_SLACK))
