"""Delivery controls on the real database: rate-limit slots, the FIFO head, the circuit's
probe, and releasing parked deliveries (webhooks.delivery.waiting), without a worker."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from tests.api_client import Caller
from webhooks.admin.endpoints import update_endpoint
from webhooks.admin.tenants import create_tenant
from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef
from webhooks.core import clock
from webhooks.core.db import new_session, session_scope
from webhooks.delivery import engine, rate_limit, state, waiting
from webhooks.delivery.circuit import FIRST_COOLDOWN, THRESHOLD, CircuitState
from webhooks.delivery.waiting import Verdict
from webhooks.ingest.enqueue import ingest
from webhooks.models import Delivery, DeliveryStatus, Endpoint, Tenant
from webhooks.ops import metrics
from webhooks.outbound.http import Transport
from webhooks.outbound.ssrf import TargetPolicy

#: Enabling and reordering need no request (only a change of the URL or request shape PINGs).
NO_TRANSPORT = Transport(TargetPolicy(), user_agent="webhooks/test")

#: The lease of a claim at the default 10 s timeout.
LEASE = timedelta(seconds=state.lease_seconds(10))
CAP = 200


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[DeliveryRef]:
    sent: list[DeliveryRef] = []

    def publish(refs: list[DeliveryRef], **_: Any) -> int:
        sent.extend(refs)
        return len(refs)

    monkeypatch.setattr(broker, "publish", publish)
    return sent


@pytest.fixture
def tenant(session: Session) -> Tenant:
    tenant = create_tenant(session, "acme")
    session.commit()
    return tenant


def make_endpoint(session: Session, tenant: Tenant, **fields: Any) -> str:
    endpoint = Endpoint(tenant_id=tenant.id, url="https://r.example/h", secret="S3cret!", **fields)
    session.add(endpoint)
    session.commit()
    return endpoint.id


def deliveries(
    session: Session, tenant: Tenant, n: int, *, timestamps: list[datetime] | None = None
) -> list[str]:
    ids = []
    for index in range(n):
        at = timestamps[index] if timestamps else None
        result = ingest(session, tenant=tenant, event_type="t", data={"n": index}, timestamp=at)
        session.commit()
        ids.append(
            session.scalars(select(Delivery.id).where(Delivery.event_id == result.event.id)).one()
        )
    return ids


def ahead() -> datetime:
    """A time the test's steps all happen at, later than the real clock gets during the test
    (a take uses the real clock when that is later: see waiting.take)."""
    return clock.now() + timedelta(minutes=5)


def take(delivery_id: str, now: datetime) -> waiting.Decision:
    with session_scope() as session:
        return waiting.take(session, delivery_id, now=now, cap=CAP)


def row(delivery_id: str) -> Delivery:
    with new_session() as session:
        found = session.get(Delivery, delivery_id)
        assert found is not None
        return found


def due_time(delivery_id: str) -> datetime:
    due = row(delivery_id).next_attempt_at
    assert due is not None
    return due


def endpoint_row(endpoint_id: str) -> Endpoint:
    with new_session() as session:
        found = session.get(Endpoint, endpoint_id)
        assert found is not None
        return found


def make_due(delivery_id: str, at: datetime) -> None:
    """What a message arriving for a released delivery finds: due, no live claim."""
    with session_scope() as session:
        session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(next_attempt_at=at)
        )


def test_an_uncontrolled_endpoint_is_left_to_the_fast_claim(
    session: Session, tenant: Tenant
) -> None:
    make_endpoint(session, tenant)
    [delivery_id] = deliveries(session, tenant, 1)
    assert take(delivery_id, clock.now()).verdict is Verdict.SKIP
    assert row(delivery_id).locked_until is not None  # untouched: the ingest's publish stamp


def test_rate_limit_slots_then_parking_then_release(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    endpoint_id = make_endpoint(session, tenant, rate_limit=2.0)
    per_horizon = int(2 * rate_limit.HORIZON.total_seconds())
    ids = deliveries(session, tenant, per_horizon)
    now = ahead()
    decisions = [take(delivery_id, now) for delivery_id in ids]
    ids += deliveries(session, tenant, 3)  # published: no backlog waits without a slot
    decisions += [take(delivery_id, now) for delivery_id in ids[per_horizon:]]
    # Every send goes by the broker, the first slot (now) too: a slot holder's fast claim.
    admitted = decisions[:per_horizon]
    assert all(d.verdict is Verdict.ADMITTED for d in admitted)
    assert [round(d.delivery.delay, 3) for d in admitted if d.delivery] == [
        0.5 * i for i in range(per_horizon)
    ]
    assert all(d.verdict is Verdict.PARKED for d in decisions[per_horizon:])
    slotted = row(ids[1])
    assert slotted.admitted and slotted.next_attempt_at == now + timedelta(seconds=0.5)
    parked = row(ids[-1])
    assert (parked.next_attempt_at, parked.locked_until, parked.attempts) == (None, None, 0)

    # A slotted delivery's claim at its slot takes no slot of its own. Holding the lock, it
    # hands the parked deliveries the slots in the horizon, once the slots handed out reach
    # less than half of it ahead.
    next_free = endpoint_row(endpoint_id).next_send_at
    assert next_free is not None
    step = rate_limit.interval(2.0)
    published.clear()
    assert take(ids[1], now + timedelta(seconds=0.5)).verdict is Verdict.TAKEN
    assert not row(ids[1]).admitted
    assert published == []  # 14.5 s of slots still ahead
    half_way = ids[per_horizon // 2 + 1]  # its slot: 8 s from now, 7 s before the next free
    assert take(half_way, due_time(half_way)).verdict is Verdict.TAKEN
    assert [ref.id for ref in published] == ids[per_horizon:]
    assert [due_time(d) for d in ids[per_horizon:]] == [next_free + k * step for k in range(3)]
    assert published[0].delay == pytest.approx(7.0)
    assert endpoint_row(endpoint_id).next_send_at == next_free + 3 * step

    # A slot holder a little late still goes in its slot; one held up for longer than the
    # grace takes a new slot at the end of the line, as a new delivery would.
    assert take(ids[2], due_time(ids[2]) + rate_limit.grace(2.0)).verdict is Verdict.TAKEN
    pointer = endpoint_row(endpoint_id).next_send_at
    late = due_time(ids[3]) + rate_limit.grace(2.0) + timedelta(milliseconds=1)
    again = take(ids[3], late)
    assert again.verdict is Verdict.ADMITTED and due_time(ids[3]) == pointer
    waiting_slots = sorted(due_time(d) for d in ids[3:])
    assert all(b - a >= step for a, b in pairwise(waiting_slots))  # every slot its own


def published_ids(published: list[DeliveryRef]) -> list[str]:
    return [ref.id for ref in published]


def test_a_backlog_that_fills_the_horizon_parks_new_deliveries_at_ingest(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    """Their takes would only park them: behind a horizon's worth of due deliveries without
    a slot, or behind parked ones, a new delivery is stored parked and never published."""
    make_endpoint(session, tenant, rate_limit=2.0)
    per_horizon = int(2 * rate_limit.HORIZON.total_seconds())
    ids = deliveries(session, tenant, per_horizon + 1)
    assert published_ids(published) == ids[:per_horizon]
    assert row(ids[-1]).next_attempt_at is None
    [delivery_id] = deliveries(session, tenant, 1)  # behind the parked one
    assert row(delivery_id).next_attempt_at is None and delivery_id not in published_ids(published)
    assert take(ids[0], ahead()).verdict is Verdict.ADMITTED
    assert {delivery_id, ids[-1]} <= set(published_ids(published))  # given slots


@pytest.mark.parametrize(
    ("fields", "parked"),
    [({"circuit": "open"}, True), ({"circuit": "open", "ordering": "fifo"}, False)],
)
def test_a_new_delivery_behind_an_open_circuit_is_parked_at_ingest(
    session: Session,
    tenant: Tenant,
    published: list[DeliveryRef],
    fields: dict[str, Any],
    parked: bool,
) -> None:
    """Not a FIFO endpoint's, which may be the head (its take decides)."""
    make_endpoint(session, tenant, circuit_until=ahead(), **fields)
    [delivery_id] = deliveries(session, tenant, 1)
    assert (row(delivery_id).next_attempt_at is None) is parked
    assert (published_ids(published) == []) is parked


def test_a_backlog_parked_meanwhile_leaves_the_delivery_being_given_a_slot(
    session: Session, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: a take has read its delivery and is choosing its slot when another take,
    finding the lock busy, parks the backlog. The delivery must keep the slot it is given
    (else the slot is spent and nobody sends in it)."""
    make_endpoint(session, tenant, rate_limit=2.0)
    first, second = deliveries(session, tenant, 2)
    now = ahead()
    contended: list[Verdict] = []
    choose = rate_limit.take

    def park_the_backlog_meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not contended:  # the first take's own slot (a release after it asks again)
            contended.append(take(second, now).verdict)
        return choose(*args, **kwargs)

    monkeypatch.setattr(rate_limit, "take", park_the_backlog_meanwhile)
    decision = take(first, now)
    assert contended == [Verdict.PARKED]
    assert decision.verdict is Verdict.ADMITTED
    assert row(first).admitted and row(first).next_attempt_at == now
    # Parked, then handed the next slot by the first take, which held the lock.
    assert row(second).admitted and row(second).next_attempt_at == now + timedelta(seconds=0.5)


def test_a_backlog_parked_beside_a_take_is_released_once_that_take_is_over(
    session: Session, tenant: Tenant, published: list[DeliveryRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: a take holds the endpoint's lock and has handed out its slots to the parked
    when another, finding the lock busy, parks the whole backlog. No take may come after
    (every message finds its delivery parked), so the parking one releases the endpoint
    once it has committed, through the engine; else the backlog waits for the sweep."""
    make_endpoint(session, tenant, rate_limit=5.0)
    ids = deliveries(session, tenant, 3)
    published.clear()
    holder = new_session()
    holder.execute(select(Endpoint.id).with_for_update())  # the other take, its release done
    park = waiting._park_backlog

    def the_other_take_ends_meanwhile(*args: Any, **kwargs: Any) -> set[str]:
        parked = park(*args, **kwargs)
        holder.commit()  # before the parking take's commit: it saw none of these parked
        return parked

    monkeypatch.setattr(waiting, "_park_backlog", the_other_take_ends_meanwhile)
    assert engine.process(ids[0], NO_TRANSPORT) == state.NOTHING
    holder.close()
    assert sorted(published_ids(published)) == sorted(ids)
    slots = sorted(due_time(d) for d in ids)
    assert all(row(d).admitted for d in ids)
    assert [later - first for first, later in pairwise(slots)] == [timedelta(seconds=0.2)] * 2


def test_a_take_with_no_slot_in_the_horizon_parks_the_whole_backlog(
    session: Session, tenant: Tenant
) -> None:
    """The first take to find the horizon full parks the rest of the backlog with it, so
    that their messages, arriving by the thousand, return before the endpoint's lock; the
    slot holders keep their slots, and another endpoint's deliveries are not touched."""
    make_endpoint(session, tenant, rate_limit=1.0)
    per_horizon = int(rate_limit.HORIZON.total_seconds())
    ids = deliveries(session, tenant, per_horizon)
    now = ahead()
    assert all(take(d, now).verdict is Verdict.ADMITTED for d in ids)
    ids += deliveries(session, tenant, 4)  # published: none waits without a slot
    assert take(ids[per_horizon], now).verdict is Verdict.PARKED
    backlog = [row(d) for d in ids[per_horizon:]]
    assert all(b.next_attempt_at is None and not b.admitted for b in backlog)
    assert all(row(d).admitted and row(d).next_attempt_at for d in ids[:per_horizon])
    with new_session() as holder:  # the rest return without asking for the lock
        holder.execute(select(Endpoint.id).with_for_update())
        assert take(ids[-1], now).verdict is Verdict.PARKED
        holder.rollback()


def test_a_slot_holder_deferred_behind_the_cap_takes_a_new_slot(
    session: Session, tenant: Tenant
) -> None:
    """A slot holder that finds the in-flight cap full is deferred as any delivery is, and
    comes back after its slot has passed: it must take a new slot, not go at once between
    the endpoint's slots."""
    make_endpoint(session, tenant, rate_limit=1.0)
    [delivery_id] = deliveries(session, tenant, 1)
    assert take(delivery_id, clock.now()).verdict is Verdict.ADMITTED
    with session_scope() as in_its_slot:
        full = waiting.take(in_its_slot, delivery_id, now=due_time(delivery_id), cap=0)
    assert full.verdict is Verdict.SKIP
    with session_scope() as settling:
        deferred = state.settle_unclaimed(settling, delivery_id, rng=random.Random(0))
    assert deferred.action is state.Next.RETRY
    assert not row(delivery_id).admitted
    back = take(delivery_id, due_time(delivery_id))
    assert back.verdict is Verdict.ADMITTED  # a new slot, not a claim in the one it missed


def test_fifo_sends_the_head_only_and_one_at_a_time(session: Session, tenant: Tenant) -> None:
    endpoint_id = make_endpoint(session, tenant, ordering="fifo")
    base = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    # Ingest order differs from event order: the second event is the earliest.
    first, second, third = deliveries(
        session, tenant, 3, timestamps=[base + timedelta(seconds=1), base, base]
    )
    now = ahead()
    assert take(first, now).verdict is Verdict.PARKED  # not the head
    assert take(third, now).verdict is Verdict.PARKED  # same timestamp, ingested later
    assert take(second, now).verdict is Verdict.TAKEN
    assert endpoint_row(endpoint_id).busy_until == now + LEASE

    # The head finishes: the next in event order is released, nothing else.
    with session_scope() as finish:
        finish.execute(
            update(Delivery)
            .where(Delivery.id == second)
            .values(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None, locked_until=None)
        )
        waiting.after_attempt(finish, endpoint_id, ok=True, finished=True, now=now)
    assert endpoint_row(endpoint_id).busy_until is None
    assert row(third).next_attempt_at == now and row(first).next_attempt_at is None
    assert take(third, now).verdict is Verdict.TAKEN
    assert take(first, now).verdict is Verdict.PARKED  # still parked: a stale message
    make_due(first, now)  # a stray message for it
    assert take(first, now).verdict is Verdict.PARKED  # busy, and not the head yet

    # A head that retries keeps its place; nothing is released while it is scheduled.
    with session_scope() as retry:
        retry.execute(
            update(Delivery)
            .where(Delivery.id == third)
            .values(status=DeliveryStatus.RETRYING, next_attempt_at=now + timedelta(seconds=1))
        )
        waiting.after_attempt(retry, endpoint_id, ok=False, finished=False, now=now)
    assert row(first).next_attempt_at is None


def test_the_circuit_opens_parks_probes_and_closes(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    endpoint_id = make_endpoint(session, tenant)
    ids = deliveries(session, tenant, 4)
    now = ahead()
    for _ in range(THRESHOLD):
        with session_scope() as failing:
            waiting.after_attempt(failing, endpoint_id, ok=False, finished=False, now=now)
    opened = endpoint_row(endpoint_id)
    assert (opened.circuit, opened.circuit_failures) == (CircuitState.OPEN, THRESHOLD)
    assert opened.circuit_until == now + timedelta(seconds=FIRST_COOLDOWN)

    for delivery_id in ids:
        assert take(delivery_id, now).verdict is Verdict.PARKED
    assert all(row(d).attempts == 0 and row(d).next_attempt_at is None for d in ids)

    # Cooling down: no release. Cooled down: exactly one, the probe.
    with session_scope() as early:
        assert waiting.release(early, endpoint_id, now=now + timedelta(seconds=5)) == []
    cooled = now + timedelta(seconds=FIRST_COOLDOWN)
    with session_scope() as release_session:
        [probe] = waiting.release(release_session, endpoint_id, now=cooled)
    assert probe.id == ids[0]
    assert take(probe.id, cooled).verdict is Verdict.TAKEN
    assert endpoint_row(endpoint_id).circuit == CircuitState.HALF_OPEN
    make_due(ids[1], cooled)
    assert take(ids[1], cooled).verdict is Verdict.PARKED  # one probe only

    # The probe succeeds: closed, and every waiting delivery goes out.
    published.clear()
    with session_scope() as success:
        waiting.after_attempt(success, endpoint_id, ok=True, finished=True, now=cooled)
    closed = endpoint_row(endpoint_id)
    assert (closed.circuit, closed.circuit_failures, closed.circuit_until) == ("closed", 0, None)
    assert sorted(ref.id for ref in published) == sorted(ids[1:])  # all but the probe
    assert take(ids[2], cooled).verdict is Verdict.SKIP  # the fast claim's again


def test_a_failed_probe_opens_it_for_twice_as_long(session: Session, tenant: Tenant) -> None:
    endpoint_id = make_endpoint(session, tenant)
    [delivery_id] = deliveries(session, tenant, 1)
    now = ahead()
    for _ in range(THRESHOLD):
        with session_scope() as failing:
            waiting.after_attempt(failing, endpoint_id, ok=False, finished=False, now=now)
    cooled = now + timedelta(seconds=FIRST_COOLDOWN)
    assert take(delivery_id, cooled).verdict is Verdict.TAKEN
    with session_scope() as failing:
        waiting.after_attempt(failing, endpoint_id, ok=False, finished=False, now=cooled)
    reopened = endpoint_row(endpoint_id)
    assert (reopened.circuit, reopened.circuit_cooldown) == ("open", 2 * FIRST_COOLDOWN)
    assert reopened.circuit_until == cooled + timedelta(seconds=2 * FIRST_COOLDOWN)


def test_release_all_skips_disabled_endpoints_and_releases_the_rest(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    paused = make_endpoint(session, tenant, enabled=False)
    ids = deliveries(session, tenant, 2)  # parked at ingest for the disabled endpoint
    assert all(row(d).next_attempt_at is None for d in ids)
    assert waiting.release_all(now=clock.now()) == 0
    with session_scope() as enabling:
        enabling.execute(update(Endpoint).where(Endpoint.id == paused).values(enabled=True))
    assert waiting.release_all(now=clock.now()) == 2
    assert sorted(ref.id for ref in published) == sorted(ids)


def test_circuit_in_the_endpoint_json_stats_and_metrics(
    admin: Caller, session: Session, tenant: Tenant
) -> None:
    endpoint_id = make_endpoint(session, tenant)
    path = f"/v1/tenants/acme/endpoints/{endpoint_id}"
    assert admin.get(path).get_json()["circuit"] == "closed"
    opened = metrics.CIRCUITS_OPENED._value.get()
    closed = metrics.CIRCUITS_CLOSED._value.get()
    for _ in range(THRESHOLD):
        with session_scope() as failing:
            waiting.after_attempt(failing, endpoint_id, ok=False, finished=False)
    assert metrics.CIRCUITS_OPENED._value.get() == opened + 1
    assert admin.get(path).get_json()["circuit"] == "open"
    assert admin.get(f"{path}/stats").get_json()["circuit"] == "open"
    with session_scope() as cooled:  # the cool-down is over: the probe is due
        cooled.execute(
            update(Endpoint)
            .where(Endpoint.id == endpoint_id)
            .values(circuit_until=clock.now() - timedelta(seconds=1))
        )
    assert admin.get(path).get_json()["circuit"] == "half_open"
    with session_scope() as success:
        waiting.after_attempt(success, endpoint_id, ok=True, finished=True)
    assert metrics.CIRCUITS_CLOSED._value.get() == closed + 1
    assert admin.get(f"{path}/stats").get_json()["circuit"] == "closed"


def test_an_endpoint_at_its_in_flight_cap_is_left_to_the_usual_deferral(
    session: Session, tenant: Tenant
) -> None:
    make_endpoint(session, tenant, rate_limit=1000.0)
    first, second = deliveries(session, tenant, 2)
    now = ahead()
    for verdict in (Verdict.ADMITTED, Verdict.TAKEN):  # given its slot (now), then in it
        with session_scope() as taking:
            assert waiting.take(taking, first, now=now, cap=1).verdict is verdict
    with session_scope() as taking:
        assert waiting.take(taking, second, now=now, cap=1).verdict is Verdict.SKIP
    assert row(second).next_attempt_at is not None  # untouched: neither parked nor slotted


def test_enabling_an_endpoint_releases_through_its_controls(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    endpoint_id = make_endpoint(session, tenant, enabled=False, ordering="fifo")
    ids = deliveries(session, tenant, 3)
    with session_scope() as enabling:
        endpoint = enabling.get(Endpoint, endpoint_id)
        assert endpoint is not None
        update_endpoint(enabling, endpoint, {"enabled": True}, transport=NO_TRANSPORT)
    assert [ref.id for ref in published] == ids[:1]  # FIFO: the head only
    with session_scope() as switching:
        endpoint = switching.get(Endpoint, endpoint_id)
        assert endpoint is not None
        update_endpoint(switching, endpoint, {"ordering": "none"}, transport=NO_TRANSPORT)
    assert [ref.id for ref in published] == ids  # and the rest once it is not FIFO


@pytest.mark.parametrize(
    ("fields", "parked"), [({"rate_limit": 2.0}, True), ({"ordering": "fifo"}, False)]
)
def test_a_new_delivery_of_an_endpoint_whose_lock_is_busy_is_parked_at_once(
    session: Session, tenant: Tenant, fields: dict[str, Any], parked: bool
) -> None:
    """Not queued on the lock (a backlog would have every greenlet wait on one row); but a
    FIFO endpoint's may be its head, which nothing else would release: the usual deferral.
    The rest of the backlog is parked with it, so that its messages return before the lock."""
    endpoint_id = make_endpoint(session, tenant, **fields)
    delivery_id, other = deliveries(session, tenant, 2)
    with new_session() as holder:
        holder.execute(select(Endpoint.id).where(Endpoint.id == endpoint_id).with_for_update())
        decision = take(delivery_id, ahead())
        holder.rollback()
    assert decision.verdict is (Verdict.PARKED if parked else Verdict.SKIP)
    for waiting_row in (row(delivery_id), row(other)):
        assert (waiting_row.next_attempt_at is None) is parked
        assert waiting_row.attempts == 0


def test_a_fifo_head_parked_behind_a_later_delivery_due_is_released(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    """The next head is released when the one in flight finishes, even if a later delivery
    is due (deferred while the head was busy): that one parks itself when it comes."""
    endpoint_id = make_endpoint(session, tenant, ordering="fifo")
    first, second, third = deliveries(session, tenant, 3)
    now = ahead()
    assert take(first, now).verdict is Verdict.TAKEN
    assert take(second, now).verdict is Verdict.PARKED
    with session_scope() as writing:
        writing.execute(
            update(Delivery)
            .where(Delivery.id == third)
            .values(next_attempt_at=now + timedelta(seconds=10), locked_until=None)
        )
        writing.execute(
            update(Delivery)
            .where(Delivery.id == first)
            .values(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None, locked_until=None)
        )
    published.clear()
    with session_scope() as recording:
        waiting.after_attempt(recording, endpoint_id, ok=True, finished=True, now=now)
    assert [ref.id for ref in published] == [second]
    assert take(third, now + timedelta(seconds=10)).verdict is Verdict.PARKED  # not the head


def test_a_slot_holder_later_than_its_grace_parks_when_the_lock_is_busy(
    session: Session, tenant: Tenant
) -> None:
    """Later than its grace it parks like a new delivery, rather than queue on the lock with
    the other late holders ahead of the holders of the next slots."""
    endpoint_id = make_endpoint(session, tenant, rate_limit=2.0)
    [delivery_id] = deliveries(session, tenant, 1)
    with session_scope() as writing:
        writing.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(admitted=True, next_attempt_at=clock.now() - timedelta(seconds=5))
        )
    with new_session() as holder:
        holder.execute(select(Endpoint.id).where(Endpoint.id == endpoint_id).with_for_update())
        decision = take(delivery_id, clock.now())
        holder.rollback()
    assert decision.verdict is Verdict.PARKED
    parked = row(delivery_id)
    assert (parked.next_attempt_at, parked.admitted, parked.attempts) == (None, False, 0)


def test_a_slot_holder_early_for_its_slot_waits_it_out_without_the_endpoints_lock(
    session: Session, tenant: Tenant
) -> None:
    """The messages of a backlog that a release gave slots arrive seconds early, by the
    hundred: queued on the endpoint's lock, they would hold up the holders of the slots that
    are now. (``lock_timeout``: waiting for the lock would fail the take, not hang the test.)"""
    endpoint_id = make_endpoint(session, tenant, rate_limit=2.0)
    [delivery_id] = deliveries(session, tenant, 1)
    slot = clock.now() + timedelta(seconds=10)
    with session_scope() as writing:
        writing.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(admitted=True, next_attempt_at=slot, locked_until=None)
        )
    with new_session() as holder:
        holder.execute(select(Endpoint.id).where(Endpoint.id == endpoint_id).with_for_update())
        with session_scope() as taking:
            taking.execute(text("SET LOCAL lock_timeout = '2s'"))
            decision = waiting.take(taking, delivery_id, cap=CAP)
        holder.rollback()
    assert decision.verdict is Verdict.ADMITTED
    assert decision.delivery is not None
    assert 0 < decision.delivery.delay <= 10
    early = row(delivery_id)
    assert (early.next_attempt_at, early.admitted, early.attempts) == (slot, True, 0)


def test_a_release_gives_each_parked_delivery_its_own_slot_on_sqlite(
    sqlite_session: Session,
) -> None:
    """The slots go out in one statement (a CASE on the id): the portable path too."""
    tenant = create_tenant(sqlite_session, "acme")
    sqlite_session.commit()
    endpoint_id = make_endpoint(sqlite_session, tenant, rate_limit=4.0)
    ids = deliveries(sqlite_session, tenant, 3)
    sqlite_session.execute(
        update(Delivery).values(next_attempt_at=None, locked_until=None, admitted=False)
    )
    now = ahead()
    refs = waiting.release(sqlite_session, endpoint_id, now=now)
    sqlite_session.commit()
    step = rate_limit.interval(4.0)
    assert [ref.id for ref in refs] == sorted(ids)
    assert [ref.delay for ref in refs] == [0.0, 0.25, 0.5]
    slots = {found.id: found.next_attempt_at for found in sqlite_session.scalars(select(Delivery))}
    assert [slots[ref.id] for ref in refs] == [now, now + step, now + 2 * step]
