"""End to end, delivery controls: a real Celery worker (gevent) on real Redis and Postgres
delivering to a real receiver on 127.0.0.1, every request verified with ``standardwebhooks``:
payload filters, a rate limit, FIFO ordering, the circuit breaker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug import Request, Response

from tests.e2e import test_delivery_e2e as on_redis
from tests.e2e.test_delivery_e2e import Received, delivery, endpoint, wait_for_status
from tests.services import wait_until
from webhooks import enqueue_event
from webhooks.core.db import new_session
from webhooks.delivery import circuit
from webhooks.delivery.sweeper import sweep
from webhooks.models import Attempt, Delivery, Endpoint, Tenant

pytestmark = pytest.mark.e2e

dead_letter_file = on_redis.dead_letter_file
worker = on_redis.worker
tenant = on_redis.tenant


class Timed(Received):
    """A receiver that notes when each request arrived and how many overlapped."""

    def __init__(
        self, server: HTTPServer, path: str, answers: Callable[[int], Response], *, hold: float
    ) -> None:
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._count_lock = threading.Lock()
        self._hold = hold
        super().__init__(server, path, answers)

    def _handle(self, request: Request) -> Response:
        with self._count_lock:
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self._hold)  # the receiver's own work: overlapping calls would show
            return super()._handle(request)
        finally:
            with self._count_lock:
                self.in_flight -= 1


def ok(_: int) -> Response:
    return Response("ok")


def endpoint_row(endpoint_id: str) -> Endpoint:
    with new_session() as session:
        found = session.get(Endpoint, endpoint_id)
        assert found is not None
        return found


def deliveries_of(endpoint_id: str) -> list[Delivery]:
    with new_session() as session:
        query = select(Delivery).where(Delivery.endpoint_id == endpoint_id).order_by(Delivery.id)
        return list(session.scalars(query))


def test_a_filter_lets_only_matching_events_through(
    session: Session, tenant: Tenant, receiver: HTTPServer
) -> None:
    got = Received(receiver, "/filtered", ok)
    filtered = endpoint(
        session,
        tenant,
        got.url,
        filter={"data.status": "confirmed", "data.amount": {"$gt": 1000}},
    )
    payloads = [
        {"n": 1, "status": "confirmed", "amount": 1500},
        {"n": 2, "status": "confirmed", "amount": 900},
        {"n": 3, "status": "pending", "amount": 5000},
        {"n": 4, "status": "confirmed", "amount": 1000.5},
        {"n": 5, "amount": 2000},
    ]
    events = [enqueue_event("booking.created", data, tenant="acme") for data in payloads]
    for event_id in (events[0], events[3]):
        wait_for_status(event_id, "succeeded")
    assert sorted(body["data"]["n"] for body in got.verified()) == [1, 4]
    # The others created no delivery at all: nothing is left to arrive.
    assert [d.event_id for d in deliveries_of(filtered)] == [events[0], events[3]]


def test_a_rate_limit_spaces_the_sends_and_delivers_all(
    session: Session, tenant: Tenant, receiver: HTTPServer
) -> None:
    got = Timed(receiver, "/limited", ok, hold=0)
    limited = endpoint(session, tenant, got.url, rate_limit=5)
    events = [enqueue_event("booking.created", {"n": n}, tenant="acme") for n in range(30)]
    wait_until(lambda: len(got.requests) >= 30, 30, "30 deliveries at 5/s")
    wait_until(
        lambda: all(d.status == "succeeded" for d in deliveries_of(limited)), 10, "all recorded"
    )
    assert sorted(body["id"] for body in got.verified()) == sorted(events)
    # Slots are exactly 200 ms apart and no attempt starts before its slot, but each starts a
    # little late (the worker's load: tens of ms, a few hundred as the burst comes in on a busy
    # machine), and at most 250 ms late (later, it takes a new slot): any window of w seconds
    # holds at most (w + 0.25) * 5 + 1 arrivals, give or take the network's few ms.
    with new_session() as check:
        query = select(Attempt.started_at).where(Attempt.endpoint_id == limited)
        starts = sorted(check.scalars(query))
    # The last starts no earlier than its slot, 29 slots after the first's; the first at most
    # the grace late, and the time from its claim to its request's start (0.1 s here).
    shortest = 29 * 0.2 - 0.25 - 0.1
    assert starts[-1] - starts[0] >= timedelta(seconds=shortest)
    arrivals = got.arrivals
    assert arrivals[-1] - arrivals[0] >= shortest  # 5/s overall
    for index, first in enumerate(arrivals):  # any 2 s: at most 12 (10, and the grace's 1.25)
        assert sum(1 for t in arrivals[index:] if t < first + 2.0) <= 12
    spans = [later - first for first, later in zip(arrivals, arrivals[5:], strict=False)]
    assert min(spans) >= 0.7, spans  # 6 arrivals (a second's 5, and one) take 0.75 s or more
    assert all(d.attempts == 1 for d in deliveries_of(limited))  # waiting used up no attempt


def test_fifo_delivers_in_order_one_at_a_time_through_retries(
    session: Session, tenant: Tenant, receiver: HTTPServer
) -> None:
    def answers(number: int) -> Response:
        return Response("", status=500 if number <= 2 else 200)  # the first event fails twice

    got = Timed(receiver, "/fifo", answers, hold=0.1)
    ordered = endpoint(session, tenant, got.url, ordering="fifo", retry_schedule=[1, 1])
    events = [enqueue_event("booking.created", {"n": n}, tenant="acme") for n in range(1, 6)]
    for event_id in events:
        wait_for_status(event_id, "succeeded", timeout=30)
    assert [body["data"]["n"] for body in got.verified()] == [1, 1, 1, 2, 3, 4, 5]
    assert got.most_in_flight == 1
    assert [d.attempts for d in deliveries_of(ordered)] == [3, 1, 1, 1, 1]
    # The last attempt's bookkeeping commits just after its record.
    wait_until(lambda: endpoint_row(ordered).busy_until is None, 5, "the endpoint freed")


def test_the_circuit_opens_holds_deliveries_then_the_probe_closes_it(
    session: Session, tenant: Tenant, receiver: HTTPServer
) -> None:
    healthy = threading.Event()

    def answers(_: int) -> Response:
        return Response("", status=200 if healthy.is_set() else 503)

    got = Received(receiver, "/breaker", answers)
    breaker = endpoint(session, tenant, got.url, retry_schedule=[0] * 12)
    first = enqueue_event("booking.created", {"n": 1}, tenant="acme")
    wait_until(
        lambda: endpoint_row(breaker).circuit == "open", 20, "the circuit to open on failures"
    )
    opened_at = time.monotonic()
    later = [enqueue_event("booking.created", {"n": n}, tenant="acme") for n in (2, 3)]

    def parked() -> bool:
        return all(delivery(e).next_attempt_at is None for e in (first, *later))

    wait_until(parked, 10, "the deliveries to wait for the circuit")
    assert [delivery(e).attempts for e in (first, *later)] == [circuit.THRESHOLD, 0, 0]
    assert len(got.requests) == circuit.THRESHOLD
    row = endpoint_row(breaker)
    assert row.circuit_cooldown == circuit.FIRST_COOLDOWN and row.circuit_failures == 10
    healthy.set()

    def closed_after_sweeps() -> bool:
        sweep()  # beat's sweep: it lets the probe go once the cool-down is over
        return endpoint_row(breaker).circuit == "closed"

    wait_until(closed_after_sweeps, circuit.FIRST_COOLDOWN + 15, "the probe to close it")
    assert time.monotonic() - opened_at >= circuit.FIRST_COOLDOWN - 1
    for event_id in (first, *later):
        wait_for_status(event_id, "succeeded")
    # Waiting used up no attempt: one more each, the probe's (the first) included.
    assert [delivery(e).attempts for e in (first, *later)] == [circuit.THRESHOLD + 1, 1, 1]
    assert len(got.verified()) == circuit.THRESHOLD + 3
