"""Delivery controls at send time: rate limit, FIFO ordering, circuit breaker.

An endpoint with a rate limit, with ``"ordering": "fifo"`` or with a circuit that is not
closed is *controlled*: the fast claim (:mod:`webhooks.delivery.engine`) leaves its deliveries
alone and :func:`take` decides, in one transaction under the endpoint row's lock (so every
worker on every host sees the same slots, the same head, the same probe):

- the circuit: closed, or its cool-down is over and this delivery becomes the probe;
- FIFO: no delivery of the endpoint is in flight (``busy_until``) and this one is the head,
  the endpoint's first open delivery by event ``timestamp``, then ingest order (the id);
- the rate limit: the delivery holds a slot (``admitted``) that has come and is not long
  past (:func:`~webhooks.delivery.rate_limit.grace`), or the next free slot is now. A slot
  holder whose message came later than that (a stalled worker, a broker that held it) takes
  a new slot like a new delivery, so messages that were held up and arrive together are
  spaced again instead of going out in a burst.

A delivery that may go is claimed. One that may not waits without using up an attempt or a
worker: with a rate-limit slot ahead within :data:`~webhooks.delivery.rate_limit.HORIZON`, it
is given that slot and waits in the broker as a countdown (on the retries queue, ahead of
the rest of a backlog); otherwise it is *parked* (``next_attempt_at`` NULL, like a disabled
endpoint's), which neither the broker nor the sweep ever sees again until it is released, and
so is the rest of the endpoint's backlog that holds no slot, in the same statement: their
messages then find them parked and cost one short read each.

:func:`release` lets parked deliveries go as far as the controls allow: all of them for an
uncontrolled endpoint, the head for FIFO, the probe for a circuit whose cool-down is over, one
slot each for the next :data:`~webhooks.delivery.rate_limit.HORIZON` under a rate limit. It
runs where something changes: a FIFO delivery finishing, the circuit closing, an endpoint
enabled or its controls changed (:func:`after_attempt`, :mod:`webhooks.admin.endpoints`), a
take that parked the backlog while another held the lock (:func:`wake`, once it committed), and
at every sweep for each endpoint with parked deliveries (:func:`release_all`): that hands out
the next rate-limit slots and the probes, and lets nothing stay parked by a race.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    case,
    exists,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased

from webhooks.broker.publishing import DeliveryRef, publish_after_commit
from webhooks.core.db import session_scope
from webhooks.core.dialects import Dialect
from webhooks.delivery import rate_limit, state
from webhooks.delivery.circuit import Circuit, CircuitState
from webhooks.delivery.circuit import after_attempt as next_circuit
from webhooks.delivery.state import db_now
from webhooks.models import OPEN_STATUSES, Delivery, Endpoint, Event, Hold
from webhooks.ops import metrics

log = logging.getLogger("webhooks.delivery")

FIFO = "fifo"

_DELIVERIES = cast(Table, Delivery.__table__)


@dataclass(frozen=True)
class Controls:
    """What the controls read of an endpoint row."""

    id: str
    enabled: bool
    rate_limit: float | None
    ordering: str
    next_send_at: datetime | None
    busy_until: datetime | None
    circuit: Circuit
    timeout_seconds: int

    @property
    def fifo(self) -> bool:
        return self.ordering == FIFO

    @property
    def controlled(self) -> bool:
        """Whether sending needs :func:`take` (else the fast claim is enough)."""
        return (
            self.rate_limit is not None
            or self.fifo
            or self.circuit.state is not CircuitState.CLOSED
        )

    @property
    def publishes_every_slot(self) -> bool:
        """Whether every send is a slot holder's (a rate limit alone, the circuit closed): a
        delivery given a slot, even one that is now, is published for it rather than sent by
        the :func:`take` that gave it. So the sends all go one way, in the order of their
        slots: a backlog's first take does not send at once while the holders of the next
        slots wait behind the rest of the backlog's messages, and then miss them."""
        return (
            self.rate_limit is not None
            and not self.fifo
            and self.circuit.state is CircuitState.CLOSED
        )

    def busy(self, now: datetime) -> bool:
        return self.busy_until is not None and self.busy_until > now


def _lock(session: Session, endpoint_id: str, *, lock: bool = True) -> Controls | None:
    """The endpoint's controls, its row locked until the transaction ends (without ``lock``:
    only if no other transaction holds it, else None; see :func:`take`)."""
    row = session.execute(
        select(
            Endpoint.enabled,
            Endpoint.rate_limit,
            Endpoint.ordering,
            Endpoint.next_send_at,
            Endpoint.busy_until,
            Endpoint.circuit,
            Endpoint.circuit_failures,
            Endpoint.circuit_until,
            Endpoint.circuit_cooldown,
            Endpoint.timeout_seconds,
        )
        .where(Endpoint.id == endpoint_id)
        .with_for_update(skip_locked=not lock)
    ).one_or_none()
    if row is None:
        return None
    circuit = Circuit(CircuitState(row[5]), row[6], row[7], row[8])
    return Controls(endpoint_id, *row[:5], circuit, row[9])


def _set(session: Session, endpoint_id: str, **values: Any) -> None:
    session.execute(
        update(Endpoint).where(Endpoint.id == endpoint_id).values(values),
        execution_options={"synchronize_session": False},
    )


def _circuit_values(circuit: Circuit) -> dict[str, Any]:
    return {
        "circuit": str(circuit.state),
        "circuit_failures": circuit.failures,
        "circuit_until": circuit.until,
        "circuit_cooldown": circuit.cooldown,
    }


# -- Taking a delivery: the claim of a controlled endpoint ------------------------------------


class Verdict(Enum):
    #: Claimed: the caller makes the attempt.
    TAKEN = "taken"
    #: Given a rate-limit slot ahead: the caller publishes it with ``Decision.delay``.
    ADMITTED = "admitted"
    #: Parked until released.
    PARKED = "parked"
    #: Not for the controls: the endpoint is not controlled, or the delivery not claimable.
    SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    #: The delivery, with the seconds until its slot (``ADMITTED``).
    delivery: DeliveryRef | None = None
    #: The claim (``TAKEN``): ``attempts``, ``claims`` and ``lease`` (its fencing token),
    #: ``event_id``, ``endpoint_id``, for :func:`webhooks.delivery.portable.load`.
    claimed: Mapping[str, Any] | None = None
    #: An endpoint whose deliveries this take parked while another held its lock: the caller
    #: wakes it once this transaction has committed (:func:`wake`).
    wake: str | None = None


_SKIP = Decision(Verdict.SKIP)
_PARKED = Decision(Verdict.PARKED)


def _claimable(now: datetime | ColumnElement[datetime]) -> tuple[Any, ...]:
    """Open, due and held by no worker (as :mod:`webhooks.delivery.state` spells it)."""
    return (
        Delivery.status.in_(OPEN_STATUSES),
        Delivery.next_attempt_at <= now,
        (Delivery.locked_until.is_(None)) | (Delivery.locked_until <= now),
    )


def _database_now(session: Session) -> datetime:
    """The database's clock, which every host agrees on (see webhooks.delivery.state)."""
    return cast(datetime, session.scalar(select(db_now(session))))


def take(session: Session, delivery_id: str, *, cap: int, now: datetime | None = None) -> Decision:
    """Claim a delivery of a controlled endpoint for one attempt, or hold it back; in
    ``session``'s transaction, which the caller commits. ``SKIP`` also when the endpoint has
    ``cap`` deliveries in flight (the caller defers it as for any endpoint).

    ``now`` (tests) is a time at or after the database's; the database's is read once the
    endpoint's lock is held, so that waiting for it makes nothing look earlier than it is.
    """
    found = session.execute(
        select(
            Delivery.endpoint_id,
            Delivery.admitted,
            Delivery.next_attempt_at,
            Endpoint.rate_limit,
            db_now(session),
        )
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.id == delivery_id)
    ).one_or_none()
    if found is None:
        return _SKIP
    endpoint_id, admitted, due, rate, database_now = found
    if due is None:  # parked: its message is a stale one, and nothing is to be done
        return _PARKED
    at = _not_before(now, database_now)
    if admitted and due > at:
        return _early(session, delivery_id, at)
    controls = _lock(
        session, endpoint_id, lock=_may_be_in_its_slot(admitted, due, rate, database_now)
    )
    if controls is None:  # another delivery of the endpoint is being taken right now
        return _park_contended(session, delivery_id, endpoint_id, now)
    if not controls.enabled or not controls.controlled:
        return _SKIP
    now = _now(session, now)
    row = session.execute(
        select(
            Delivery.admitted,
            Delivery.next_attempt_at,
            Event.timestamp,
            Event.type,
            Delivery.attempts,
        )
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.id == delivery_id, *_claimable(now))
        # Held to the end: a backlog parked by another take (which passes over held rows)
        # must not take this one away between reading it here and giving it a slot.
        .with_for_update(of=Delivery)
    ).one_or_none()
    if row is None:
        return _early(session, delivery_id, now)
    if _in_flight(session, endpoint_id, now) >= cap:
        return _SKIP
    admitted, due, timestamp, event_type, attempts = row
    still_claimable = (Delivery.id == delivery_id, *_claimable(now))
    if not controls.circuit.admits(now) or (
        controls.fifo
        and (controls.busy(now) or not _is_head(session, endpoint_id, delivery_id, timestamp))
    ):
        return _park(session, still_claimable)
    endpoint_values: dict[str, Any] = {}
    if controls.rate_limit is not None and not (
        admitted and now <= cast(datetime, due) + rate_limit.grace(controls.rate_limit)
    ):
        slots, next_free = rate_limit.take(
            controls.next_send_at, now, controls.rate_limit, count=1, horizon=rate_limit.HORIZON
        )
        if not slots:  # the lock is held: whoever takes it next sees these parked
            parked = _park_backlog(session, delivery_id, endpoint_id, now)
            return _PARKED if delivery_id in parked else _SKIP
        slot = slots[0]
        endpoint_values["next_send_at"] = next_free
        if slot > now or controls.publishes_every_slot:  # wait for it in the broker
            if endpoint_values:
                _set(session, endpoint_id, **endpoint_values)
            session.execute(
                update(Delivery)
                .where(*still_claimable)
                .values(next_attempt_at=slot, locked_until=now, admitted=True, hold=None),
                execution_options={"synchronize_session": False},
            )
            delay = (slot - now).total_seconds()
            ref = DeliveryRef(delivery_id, endpoint_id, event_type, attempts, delay, admitted=True)
            _slots_for_the_parked(session, controls, next_free, now)
            return Decision(Verdict.ADMITTED, ref)
    lease_end = now + timedelta(seconds=state.lease_seconds(controls.timeout_seconds))
    claimed = session.execute(
        update(Delivery)
        .where(*still_claimable)
        # A claim is not a change of state: updated_at stays. A new fencing token.
        .values(
            locked_until=lease_end,
            claims=Delivery.claims + 1,
            admitted=False,
            hold=Hold.CLAIMED,
            updated_at=Delivery.updated_at,
        )
        .returning(
            Delivery.attempts,
            Delivery.claims,
            Delivery.locked_until.label("lease"),  # with claims, the fencing token
            Delivery.event_id,
            Delivery.endpoint_id,
        ),
        execution_options={"synchronize_session": False},
    ).first()
    if claimed is None:
        return _SKIP
    if controls.fifo:
        endpoint_values["busy_until"] = lease_end
    if controls.circuit.state is not CircuitState.CLOSED:
        probing = controls.circuit.probing(now, lease_end - now)
        endpoint_values.update(_circuit_values(probing))
        log.info("endpoint %s: circuit half open, %s is the probe", endpoint_id, delivery_id)
    if endpoint_values:
        _set(session, endpoint_id, **endpoint_values)
    _slots_for_the_parked(
        session, controls, endpoint_values.get("next_send_at", controls.next_send_at), now
    )
    return Decision(Verdict.TAKEN, claimed=claimed._asdict())


def _may_be_in_its_slot(
    admitted: bool, due: datetime | None, rate: float | None, now: datetime
) -> bool:
    """Whether a delivery holds a slot it may still go in, so that its take waits for the
    endpoint's lock rather than park when another take holds it. One later than its grace
    parks like a new delivery: after a stall, the late holders of a whole horizon of slots
    would otherwise queue on the lock together, ahead of the holders of the slots that come
    next, and make them late too."""
    if not admitted or due is None or rate is None:
        return admitted
    return now <= due + rate_limit.grace(rate)


def _slots_for_the_parked(
    session: Session, controls: Controls, next_free: datetime | None, now: datetime
) -> None:
    """While the lock is held anyway: give parked deliveries of a rate-limited endpoint the
    slots now within the horizon (those parked as the lock was busy get their turn without
    waiting for the sweep), once the slots handed out reach less than half of it ahead. Half:
    a release costs about as much as the take itself, and so it comes once per half a
    horizon's worth of sends instead of at every one, while the next free slot is always
    still seconds away when it does."""
    if controls.rate_limit is None or controls.fifo:
        return
    if next_free is None or next_free < now + rate_limit.HORIZON / 2:
        release(session, controls.id, now=now)


def _early(session: Session, delivery_id: str, now: datetime) -> Decision:
    """A slot holder whose message came before its slot: it waits out the rest, with a
    message stamped now. Anything else not claimable is no business of the controls.

    Most come seconds early: the messages of a backlog whose rows a release gave slots while
    their messages were on their way. So this needs only the delivery's own row, not the
    endpoint's lock: by the hundred at once, they would otherwise queue on it ahead of the
    holders of the slots that are now, and make them miss them. (One that another take
    parked and gave a slot while this one waited for the lock comes here once it is held.)"""
    ahead = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.admitted,
            Delivery.status.in_(OPEN_STATUSES),
            Delivery.next_attempt_at > now,
            (Delivery.locked_until.is_(None)) | (Delivery.locked_until <= now),
        )
        .values(locked_until=now, updated_at=Delivery.updated_at)
        .returning(Delivery.endpoint_id, Delivery.attempts, Delivery.next_attempt_at, Event.type)
        .where(Event.id == Delivery.event_id),
        execution_options={"synchronize_session": False},
    ).first()
    if ahead is None:
        return _SKIP
    endpoint_id, attempts, slot, event_type = ahead
    delay = (cast(datetime, slot) - now).total_seconds()
    ref = DeliveryRef(delivery_id, endpoint_id, event_type, attempts, delay, admitted=True)
    return Decision(Verdict.ADMITTED, ref)


def _now(session: Session, now: datetime | None) -> datetime:
    return _not_before(now, _database_now(session))


def _not_before(now: datetime | None, database: datetime) -> datetime:
    """The time a step runs at: the database's, or ``now`` (tests) when that is later."""
    return database if now is None else max(now, database)


def _park_contended(
    session: Session, delivery_id: str, endpoint_id: str, now: datetime | None
) -> Decision:
    """A new delivery of an endpoint whose lock another take holds: parked at once if the
    endpoint has a rate limit or an open circuit, rather than queueing on the lock (a backlog
    arriving at once would otherwise have every worker's greenlets wait on one row), and with
    it the rest of the endpoint's backlog (:func:`_park_backlog`). A FIFO endpoint's is left
    to the usual short deferral instead: it may be the head, which nothing else would release
    (``now`` as for :func:`take`; else the database's).

    The caller then wakes the endpoint (:attr:`Decision.wake`): the lock's holder may have
    handed out its slots to the parked before these rows were parked, or committed, and with
    the whole backlog parked no other take may come to do it; they would wait for the sweep,
    the endpoint idle meanwhile."""
    rate_limited_or_open = exists().where(
        Endpoint.id == endpoint_id,
        Endpoint.enabled,
        Endpoint.ordering != FIFO,
        (Endpoint.rate_limit.is_not(None)) | (Endpoint.circuit != CircuitState.CLOSED),
    )
    when = db_now(session) if now is None else now
    parked = _park_backlog(session, delivery_id, endpoint_id, when, rate_limited_or_open)
    if not parked:
        return _SKIP
    verdict = Verdict.PARKED if delivery_id in parked else Verdict.SKIP
    return Decision(verdict, wake=endpoint_id)


def _park_backlog(
    session: Session,
    delivery_id: str,
    endpoint_id: str,
    now: datetime | ColumnElement[datetime],
    *conditions: ColumnElement[bool],
) -> set[str]:
    """Park this delivery (if ``conditions`` hold), and with it every other delivery of the
    endpoint that is due, unheld and holds no slot. Those are the rest of a backlog whose
    messages are on their way, by the thousand at once: each of their takes then finds its
    delivery parked and returns before asking for the endpoint's lock, so the workers are soon
    free again for the slot holders, whose slots would otherwise pass while the backlog's
    messages are seen one by one. :func:`release` hands the parked their slots in turn, as
    for any parked delivery.

    One statement, which skips the rows other transactions hold: many takes park at once,
    and two that waited for each other's rows (in whatever order each met them) would
    deadlock. Returns the ids parked."""
    backlog = (
        select(_DELIVERIES.c.id)
        .where(
            _DELIVERIES.c.endpoint_id == endpoint_id,
            *_claimable(now),
            (_DELIVERIES.c.id == delivery_id) | ~_DELIVERIES.c.admitted,
            *conditions,
        )
        .with_for_update(skip_locked=True)
    )
    parked = session.scalars(
        _DELIVERIES.update()
        .where(_DELIVERIES.c.id.in_(backlog))
        .values(next_attempt_at=None, locked_until=None, admitted=False, hold=None)
        .returning(_DELIVERIES.c.id)
    )
    return set(parked)


def _park(session: Session, still_claimable: tuple[Any, ...]) -> Decision:
    session.execute(
        update(Delivery)
        .where(*still_claimable)
        .values(next_attempt_at=None, locked_until=None, admitted=False, hold=None),
        execution_options={"synchronize_session": False},
    )
    return _PARKED


def _in_flight(session: Session, endpoint_id: str, now: datetime) -> int:
    """The endpoint's deliveries held by a worker beyond ``now`` (a claim's lease, not the
    stamp of a message on its way)."""
    return (
        session.scalar(
            select(func.count()).where(
                Delivery.endpoint_id == endpoint_id,
                Delivery.status.in_(OPEN_STATUSES),
                Delivery.locked_until > now,
            )
        )
        or 0
    )


def _event_order() -> tuple[Any, ...]:
    return (Event.timestamp, Delivery.id)


def _is_head(session: Session, endpoint_id: str, delivery_id: str, timestamp: datetime) -> bool:
    """Whether no open delivery of the endpoint comes before this one in event order."""
    earlier = aliased(Delivery)
    earlier_event = aliased(Event)
    ahead = session.execute(
        select(
            exists()
            .where(
                earlier.endpoint_id == endpoint_id,
                earlier.status.in_(OPEN_STATUSES),
                earlier.id != delivery_id,
                earlier_event.id == earlier.event_id,
                tuple_(earlier_event.timestamp, earlier.id) < tuple_(timestamp, delivery_id),
            )
            .correlate(None)
        )
    ).scalar()
    return not ahead


# -- Parking at ingest -------------------------------------------------------------------------

INGEST_BACKLOG = 300
"""Most of a rate-limited endpoint's due deliveries without a slot that a new one is
published behind: the next free slots are theirs (the horizon's worth, and at most this)."""


def parked_at_ingest_sql(db: Dialect, endpoint: str) -> str:
    """Whether a new delivery to the enabled endpoint ``endpoint`` (a row with ``id``,
    ``rate_limit``, ``ordering`` and ``circuit``) is stored parked and published not at all:
    its circuit is not closed, or it has a rate limit and deliveries parked already (the new
    one's turn is behind them) or a backlog of due deliveries without a slot that fills the
    horizon (their messages are on their way, and will be given the slots there are).

    Either way its take would park it. Parking it at once spares a backlog that arrives at once
    a message per delivery: the workers would see them all before the slot holders could keep
    their slots. A FIFO endpoint's are left to their takes (the head goes at once). What
    releases them is what releases any parked delivery: the takes of the slot holders, the
    circuit's closing, the sweep."""
    statuses = ", ".join(f"'{status}'" for status in OPEN_STATUSES)
    horizon = rate_limit.HORIZON.total_seconds()
    return f"""
    CASE
        WHEN {endpoint}.ordering = '{FIFO}' THEN false
        WHEN {endpoint}.circuit <> '{CircuitState.CLOSED}' THEN true
        WHEN {endpoint}.rate_limit IS NULL THEN false
        WHEN EXISTS (
            SELECT 1 FROM deliveries AS parked
            WHERE parked.endpoint_id = {endpoint}.id AND parked.status IN ({statuses})
              AND parked.next_attempt_at IS NULL
        ) THEN true
        ELSE (
            SELECT count(*) FROM (
                SELECT 1 FROM deliveries AS ahead
                WHERE ahead.endpoint_id = {endpoint}.id AND ahead.status IN ({statuses})
                  AND ahead.next_attempt_at <= {db.now} AND NOT ahead.admitted
                LIMIT {INGEST_BACKLOG}
            ) AS backlog
        ) >= CASE WHEN {endpoint}.rate_limit * {horizon} < {INGEST_BACKLOG}
                  THEN {endpoint}.rate_limit * {horizon} ELSE {INGEST_BACKLOG} END
    END
    """  # noqa: S608 - names and constants of ours


# -- Letting parked deliveries go --------------------------------------------------------------


def release(
    session: Session, endpoint_id: str, *, now: datetime | None = None
) -> list[DeliveryRef]:
    """Make due what the endpoint's controls allow of its parked deliveries, publishing them
    after the commit (each with its rate-limit slot as a countdown); returns them. ``now``
    as for :func:`take`."""
    controls = _lock(session, endpoint_id)
    if controls is None:
        return []
    now = _now(session, now)
    if not controls.enabled or not controls.circuit.admits(now):
        return []
    limit: int | None = None
    if controls.circuit.state is not CircuitState.CLOSED:
        limit = 1  # the probe
    if controls.fifo:
        if controls.busy(now) or _head_is_live(session, endpoint_id):
            return []  # a delivery is in flight, or the head is due or retrying
        limit = 1
    slots: list[datetime] | None = None
    if controls.rate_limit is not None:
        most = limit if limit is not None else _slots_wanted(controls.rate_limit)
        slots, _ = rate_limit.take(
            controls.next_send_at, now, controls.rate_limit, count=most, horizon=rate_limit.HORIZON
        )
        if not slots:
            return []
        limit = len(slots)
    order = _event_order() if controls.fifo else (Delivery.id,)
    rows = session.execute(
        select(Delivery.id, Delivery.endpoint_id, Event.type, Delivery.attempts)
        .join(Event, Event.id == Delivery.event_id)
        .where(
            Delivery.endpoint_id == endpoint_id,
            Delivery.status.in_(OPEN_STATUSES),
            Delivery.next_attempt_at.is_(None),
        )
        .order_by(*order)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=True)
    ).all()
    refs = [DeliveryRef(*row) for row in rows]
    if not refs:
        return []
    if slots is None:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([ref.id for ref in refs]))
            .values(next_attempt_at=now, locked_until=now),
            execution_options={"synchronize_session": False},
        )
    else:
        refs = _admit(session, refs, slots, now)
        _set(session, endpoint_id, next_send_at=slots[len(refs) - 1] + _step(controls))
    publish_after_commit(session, refs)
    return refs


def _step(controls: Controls) -> timedelta:
    return rate_limit.interval(cast(float, controls.rate_limit))


def _slots_wanted(rate: float) -> int:
    """Slots a release hands out at most: the horizon's worth, and at least one."""
    return max(1, int(rate * rate_limit.HORIZON.total_seconds()) + 1)


def _admit(
    session: Session, refs: list[DeliveryRef], slots: list[datetime], now: datetime
) -> list[DeliveryRef]:
    """Give each delivery its slot: due then, a message on its way (stamped now) with the
    wait as its countdown.

    One statement, however many slots (a horizon's worth: 301 at 20/s): an update per row
    held the endpoint's lock for half a second on a busy machine, the first slots passed
    meanwhile, and their holders, later than their grace, took new slots a horizon ahead.
    """
    given = list(zip(refs, slots, strict=False))
    slot_type = _DELIVERIES.c.next_attempt_at.type
    slot_of = case(
        *((_DELIVERIES.c.id == ref.id, literal(slot, type_=slot_type)) for ref, slot in given)
    )
    session.execute(
        _DELIVERIES.update()
        .where(_DELIVERIES.c.id.in_([ref.id for ref, _ in given]))
        .values(next_attempt_at=slot_of, locked_until=now, admitted=True)
    )
    return [
        replace(ref, delay=max(0.0, (slot - now).total_seconds()), admitted=True)
        for ref, slot in given
    ]


def _head_is_live(session: Session, endpoint_id: str) -> bool:
    """Whether the endpoint's first open delivery in event order is not parked (due,
    scheduled or in flight): it goes by itself. Only the head counts: a later delivery that
    is due (deferred, or its message on the way) parks itself when it comes, not being the
    head, and must not keep a parked head waiting for a sweep."""
    return bool(
        session.execute(
            select(Delivery.next_attempt_at.is_not(None))
            .join(Event, Event.id == Delivery.event_id)
            .where(Delivery.endpoint_id == endpoint_id, Delivery.status.in_(OPEN_STATUSES))
            .order_by(*_event_order())
            .limit(1)
        ).scalar()
    )


def release_all(*, now: datetime | None = None) -> int:
    """The sweep's part: release what may go of every enabled endpoint's parked deliveries,
    one transaction per endpoint; returns how many were released."""
    with session_scope() as session:
        endpoint_ids = list(
            session.scalars(
                select(Endpoint.id).where(
                    Endpoint.enabled,
                    exists().where(
                        Delivery.endpoint_id == Endpoint.id,
                        Delivery.status.in_(OPEN_STATUSES),
                        Delivery.next_attempt_at.is_(None),
                    ),
                )
            )
        )
    return sum(release_endpoint(endpoint_id, now=now) for endpoint_id in endpoint_ids)


def release_endpoint(endpoint_id: str, *, now: datetime | None = None) -> int:
    """:func:`release` in a transaction of its own, committed (and so published); returns
    how many were released."""
    with session_scope() as session:
        return len(release(session, endpoint_id, now=now))


class _Wakes:
    """The wakes of endpoints whose backlog a take parked beside another (:attr:`Decision.wake`),
    one at a time per endpoint in this process.

    A backlog's burst has hundreds of takes park beside the first at once: each waking the
    endpoint itself would queue them all on its lock, ahead of the slot holders, whose slots
    would pass meanwhile. A wake asked for while one runs is folded into it instead: the
    running one releases once more when it is done, and so still starts after the asking
    take committed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._again: dict[str, bool] = {}

    def wake(self, endpoint_id: str) -> None:
        with self._lock:
            if endpoint_id in self._again:
                self._again[endpoint_id] = True
                return
            self._again[endpoint_id] = False
        try:
            while True:
                release_endpoint(endpoint_id)
                with self._lock:  # the end, under the lock a folding wake checks it by
                    if not self._again[endpoint_id]:
                        del self._again[endpoint_id]
                        return
                    self._again[endpoint_id] = False
        except BaseException:
            with self._lock:
                del self._again[endpoint_id]
            raise


wake = _Wakes().wake


# -- After an attempt: the circuit, the FIFO head ----------------------------------------------


def after_attempt(
    session: Session, endpoint_id: str, *, ok: bool, finished: bool, now: datetime | None = None
) -> None:
    """Count the attempt into the circuit and, for FIFO, free the endpoint for the next.

    In the transaction that records the attempt. ``finished``: the delivery succeeded or
    failed for good (not retrying). What the change lets go is released at once.
    """
    controls = _lock(session, endpoint_id)
    if controls is None:
        return
    now = _now(session, now)
    values: dict[str, Any] = {}
    circuit = next_circuit(controls.circuit, ok=ok, now=now)
    if circuit != controls.circuit:
        values.update(_circuit_values(circuit))
        _count_transition(endpoint_id, controls.circuit.state, circuit)
    if controls.fifo and controls.busy_until is not None:
        values["busy_until"] = None
    if values:
        _set(session, endpoint_id, **values)
    closed = circuit.state is CircuitState.CLOSED and controls.circuit.state is not circuit.state
    if closed or (controls.fifo and finished):
        session.flush()
        release(session, endpoint_id, now=now)


def _count_transition(endpoint_id: str, before: CircuitState, after: Circuit) -> None:
    if after.state is CircuitState.OPEN and before is CircuitState.CLOSED:
        metrics.circuit_opened()
        log.warning(
            "endpoint %s: circuit open after %d failed attempts in a row; next probe in %ds",
            endpoint_id,
            after.failures,
            after.cooldown,
        )
    elif after.state is CircuitState.OPEN and before is CircuitState.HALF_OPEN:
        log.warning(
            "endpoint %s: the probe failed; circuit open for %ds", endpoint_id, after.cooldown
        )
    elif after.state is CircuitState.CLOSED and before is not CircuitState.CLOSED:
        metrics.circuit_closed()
        log.info("endpoint %s: circuit closed", endpoint_id)
