"""The delivery state machine at its edges, on the real database, each race driven by an
injected pause (a transport or a function of the engine that waits for the test's signal):
lost claims, errors around the send, parking against enabling, skewed clocks, redelivering
during an attempt, endpoint health and the in-flight cap under concurrency."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug import Request, Response

from tests.e2e.broker import environment
from tests.services import wait_until
from webhooks.admin.endpoints import update_endpoint
from webhooks.broker import publishing as broker
from webhooks.core import clock
from webhooks.core.db import get_engine, new_session
from webhooks.delivery import dead_letter, postgres, redelivery, state
from webhooks.delivery.engine import process
from webhooks.delivery.state import Next, NextStep
from webhooks.ingest.enqueue import ingest
from webhooks.models import Attempt, Delivery, Endpoint, Hold, Tenant
from webhooks.outbound.http import Transport, default_transport
from webhooks.outbound.outcome import Outcome

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WAIT = 20.0


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    monkeypatch.setattr(broker, "publish", lambda refs, **_: sent.extend(r.id for r in refs) or 0)
    return sent


@pytest.fixture
def answers(receiver: HTTPServer) -> Iterator[dict[str, int]]:
    """The receiver's status per event id (200 when not named)."""
    statuses: dict[str, int] = {}

    def respond(request: Request) -> Response:
        event_id = request.headers.get("webhook-id", "")
        return Response("answer", status=statuses.get(event_id, 200))

    receiver.expect_request("/hook").respond_with_handler(respond)
    yield statuses
    receiver.clear()


def make_endpoint(session: Session, tenant: Tenant, receiver: HTTPServer, **fields: Any) -> str:
    endpoint = Endpoint(tenant_id=tenant.id, url=receiver.url_for("/hook"), secret=SECRET, **fields)
    session.add(endpoint)
    session.commit()
    return endpoint.id


def new_delivery(session: Session, tenant: Tenant) -> str:
    result = ingest(session, tenant=tenant, event_type="booking.created", data={"n": 1})
    session.commit()
    with new_session() as check:
        query = select(Delivery.id).where(Delivery.event_id == result.event.id)
        return check.scalars(query).one()


def delivery(delivery_id: str) -> Delivery:
    with new_session() as session:
        return session.get_one(Delivery, delivery_id)


def endpoint_now(endpoint_id: str) -> Endpoint:
    with new_session() as session:
        return session.get_one(Endpoint, endpoint_id)


def attempts(delivery_id: str) -> list[tuple[int, int | None, str | None, bool]]:
    with new_session() as session:
        rows = session.scalars(
            select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id)
        )
        return [(a.attempt, a.response_status, a.error, a.stale) for a in rows]


def event_of(delivery_id: str) -> str:
    return delivery(delivery_id).event_id


def run(delivery_id: str, transport: Transport | None = None) -> NextStep:
    return process(delivery_id, transport or default_transport(), rng=random.Random(1))


class PausedTransport:
    """The real transport, held before sending until the test says go."""

    def __init__(self) -> None:
        self.sending = threading.Event()
        self.go = threading.Event()

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float, **options: Any
    ) -> Outcome:
        self.sending.set()
        assert self.go.wait(WAIT), "the test never released the attempt"
        return default_transport().post(url, headers, body, timeout, **options)


class InThread:
    """``process`` in a thread of its own, its result kept."""

    def __init__(self, delivery_id: str, transport: Any) -> None:
        self.step: NextStep | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(delivery_id, transport))
        self.thread.start()

    def _run(self, delivery_id: str, transport: Any) -> None:
        try:
            self.step = run(delivery_id, transport)
        except BaseException as exc:
            self.error = exc

    def result(self) -> NextStep:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the attempt did not finish"
        if self.error is not None:
            raise self.error
        assert self.step is not None
        return self.step


def expire_lease(delivery_id: str) -> None:
    """What time does to a lease: it ends (on the database's clock)."""
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "UPDATE deliveries SET locked_until = statement_timestamp() - interval '1 second'"
                " WHERE id = :id"
            ),
            {"id": delivery_id},
        )


def test_a_lost_claim_is_kept_as_history_and_changes_nothing(
    session: Session, tenant: Tenant, receiver: HTTPServer, answers: dict[str, int]
) -> None:
    make_endpoint(session, tenant, receiver, retry_schedule=[3600])
    delivery_id = new_delivery(session, tenant)
    slow = PausedTransport()
    first = InThread(delivery_id, slow)
    assert slow.sending.wait(WAIT)
    expire_lease(delivery_id)  # the first worker ran past its lease

    answers[event_of(delivery_id)] = 500  # a second worker's attempt fails
    assert run(delivery_id).action is Next.RETRY
    retrying = delivery(delivery_id)
    assert (retrying.status, retrying.attempts, retrying.claims) == ("retrying", 1, 2)

    answers.clear()  # the first worker's, sent late, succeeds: too late to count
    slow.go.set()
    assert first.result().action is Next.NOTHING
    after = delivery(delivery_id)
    assert (after.status, after.attempts, after.last_status_code) == ("retrying", 1, 500)
    assert (after.next_attempt_at, after.updated_at) == (
        retrying.next_attempt_at,
        retrying.updated_at,
    )
    # Both requests are in the history; only the holder's counts.
    assert attempts(delivery_id) == [(1, 500, None, False), (1, 200, None, True)]


def test_an_error_recording_after_sending_keeps_the_attempt(
    session: Session,
    tenant: Tenant,
    receiver: HTTPServer,
    answers: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_endpoint(session, tenant, receiver, retry_schedule=[0])
    delivery_id = new_delivery(session, tenant)
    answers[event_of(delivery_id)] = 500
    real_record = postgres.record
    calls: list[str] = []

    def lost_reply(parameters: Mapping[str, Any]) -> state.Written:
        calls.append(parameters["id"])
        if len(calls) == 1:
            real_record(parameters)  # committed, but the reply never arrives
            raise OperationalError("RECORD", {}, Exception("server closed the connection"))
        if len(calls) == 2:
            raise OperationalError("RECORD", {}, Exception("could not connect"))
        return real_record(parameters)

    monkeypatch.setattr(postgres, "record", lost_reply)
    step = run(delivery_id)
    assert len(calls) == 3 and len(set(calls)) == 1  # one attempt id for every try
    assert step.action is Next.RETRY and step.delay == 0  # what the first try wrote
    retrying = delivery(delivery_id)
    assert (retrying.status, retrying.attempts) == ("retrying", 1)
    assert attempts(delivery_id) == [(1, 500, None, False)]


def test_an_undecryptable_secret_fails_on_schedule_with_a_dead_letter(
    session: Session, tenant: Tenant, receiver: HTTPServer, answers: dict[str, int]
) -> None:
    endpoint_id = make_endpoint(session, tenant, receiver, retry_schedule=[0])
    delivery_id = new_delivery(session, tenant)
    # A secret encrypted with another key (a rotated WEBHOOKS_SECRET_KEY, a bad restore).
    session.execute(text("UPDATE endpoints SET secret = 'gAAAAABnot-a-token'"))
    session.commit()
    assert run(delivery_id).action is Next.RETRY
    last = run(delivery_id)
    assert last.action is Next.DEAD_LETTER
    failed = delivery(delivery_id)
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 2, None)
    assert attempts(delivery_id) == [(1, None, "internal", False), (2, None, "internal", False)]
    assert len(receiver.log) == 0  # nothing was sent
    details = dead_letter.handle(delivery_id)
    assert details is not None and details["status"] == "failed"
    with new_session() as check:
        failing_since = check.scalar(select(Endpoint.failing_since).filter_by(id=endpoint_id))
    assert failing_since is not None


def _blocked_on_a_lock() -> bool:
    with get_engine().connect() as connection:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar()
    return bool(waiting)


def _enable_in_thread(endpoint_id: str) -> threading.Thread:
    def enable() -> None:
        with new_session() as other:
            endpoint = other.get_one(Endpoint, endpoint_id)
            changes = {"enabled": True}
            update_endpoint(other, endpoint, changes, transport=default_transport(), verify=False)
            other.commit()

    thread = threading.Thread(target=enable)
    thread.start()
    return thread


def test_parking_and_enabling_take_turns(
    session: Session,
    tenant: Tenant,
    receiver: HTTPServer,
    answers: dict[str, int],
    published: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_endpoint(session, tenant, receiver)
    delivery_id = new_delivery(session, tenant)
    session.execute(update(Endpoint).values(enabled=False))
    session.commit()
    real = state.endpoint_enabled
    enabling: list[threading.Thread] = []

    def then_enable(db: Session, endpoint_id: str) -> bool:
        enabled = real(db, endpoint_id)  # disabled: the worker is about to park
        enabling.append(_enable_in_thread(endpoint_id))
        wait_until(_blocked_on_a_lock, WAIT, "the enabling to wait for the parking")
        return enabled

    monkeypatch.setattr(state, "endpoint_enabled", then_enable)
    published.clear()
    assert run(delivery_id).action is Next.NOTHING  # parked
    enabling[0].join(WAIT)
    released = delivery(delivery_id)
    assert released.next_attempt_at is not None  # the enabling released it
    assert published == [delivery_id]
    monkeypatch.setattr(state, "endpoint_enabled", real)
    assert run(delivery_id).action is Next.NOTHING
    assert delivery(delivery_id).status == "succeeded"


def test_ingest_in_a_transaction_and_enabling_take_turns(
    session: Session, tenant: Tenant, receiver: HTTPServer, published: list[str]
) -> None:
    endpoint_id = make_endpoint(session, tenant, receiver, enabled=False)
    result = ingest(session, tenant=tenant, event_type="booking.created", data={"n": 1})
    enabling = _enable_in_thread(endpoint_id)  # while the producer's transaction is open
    wait_until(_blocked_on_a_lock, WAIT, "the enabling to wait for the producer")
    session.commit()
    enabling.join(WAIT)
    with new_session() as check:
        waiting = check.scalars(select(Delivery).where(Delivery.event_id == result.event.id)).one()
    assert waiting.next_attempt_at is not None and published == [waiting.id]


def test_ingest_during_an_enabling_waits_for_it(
    session: Session,
    tenant: Tenant,
    receiver: HTTPServer,
    published: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint_id = make_endpoint(session, tenant, receiver, enabled=False)
    real = state.release_waiting
    released = threading.Event()
    commit = threading.Event()

    def then_pause(db: Session, endpoint_id: str) -> int:
        count = real(db, endpoint_id)
        released.set()
        assert commit.wait(WAIT)  # enabled and released, not yet committed
        return count

    monkeypatch.setattr("webhooks.admin.endpoints.release_waiting", then_pause)
    enabling = _enable_in_thread(endpoint_id)
    assert released.wait(WAIT)
    ingested: list[str] = []

    def produce() -> None:
        with new_session() as producer:
            result = ingest(producer, tenant=tenant, event_type="booking.created", data={})
            producer.commit()
            ingested.append(result.event.id)

    producer = threading.Thread(target=produce)
    producer.start()
    wait_until(_blocked_on_a_lock, WAIT, "the producer to wait for the enabling")
    commit.set()
    enabling.join(WAIT)
    producer.join(WAIT)
    with new_session() as check:
        query = select(Delivery).where(Delivery.event_id == ingested[0])
        waiting = check.scalars(query).one()
    assert waiting.next_attempt_at is not None and published == [waiting.id]


@pytest.mark.parametrize("skew", [timedelta(seconds=60), timedelta(seconds=-60)])
def test_skewed_application_clocks_deliver_on_time(
    session: Session,
    tenant: Tenant,
    receiver: HTTPServer,
    answers: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    skew: timedelta,
) -> None:
    make_endpoint(session, tenant, receiver, retry_schedule=[0])
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + skew)
    delivery_id = new_delivery(session, tenant)
    answers[event_of(delivery_id)] = 500
    assert run(delivery_id).action is Next.RETRY  # due at once, whatever this host's clock
    answers.clear()
    assert run(delivery_id).action is Next.NOTHING  # the retry is due at once too
    assert delivery(delivery_id).status == "succeeded"


def test_a_host_ahead_does_not_take_over_a_live_claim(
    session: Session,
    tenant: Tenant,
    receiver: HTTPServer,
    answers: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_endpoint(session, tenant, receiver)
    delivery_id = new_delivery(session, tenant)
    slow = PausedTransport()
    first = InThread(delivery_id, slow)
    assert slow.sending.wait(WAIT)
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(minutes=5))
    assert run(delivery_id).action is Next.NOTHING
    slow.go.set()
    assert first.result().action is Next.NOTHING
    assert attempts(delivery_id) == [(1, 200, None, False)]


def test_a_redeliver_during_an_attempt_follows_it(
    session: Session, tenant: Tenant, receiver: HTTPServer, answers: dict[str, int]
) -> None:
    make_endpoint(session, tenant, receiver)
    delivery_id = new_delivery(session, tenant)
    slow = PausedTransport()
    first = InThread(delivery_id, slow)
    assert slow.sending.wait(WAIT)
    with new_session() as other:
        assert redelivery.redeliver_ids(other, [delivery_id]) == []  # its worker publishes
        other.commit()
    slow.go.set()
    step = first.result()
    assert step.action is Next.RETRY and step.delay == 0 and step.delivery is not None
    again = delivery(delivery_id)
    assert (again.status, again.attempts, again.redeliver_requested) == ("pending", 1, False)
    assert run(delivery_id).action is Next.NOTHING
    assert attempts(delivery_id) == [(1, 200, None, False), (2, 200, None, False)]
    assert delivery(delivery_id).status == "succeeded"


def test_concurrent_failures_after_a_success_leave_the_endpoint_healthy(
    session: Session, tenant: Tenant, receiver: HTTPServer, answers: dict[str, int]
) -> None:
    endpoint_id = make_endpoint(
        session,
        tenant,
        receiver,
        retry_schedule=[60],
        failing_since=clock.now() - timedelta(days=6),
    )
    ids = [new_delivery(session, tenant) for _ in range(21)]
    for failing in ids[1:]:
        answers[event_of(failing)] = 500
    claimed = threading.Barrier(21, timeout=WAIT)
    success_recorded = threading.Event()

    class Ordered:
        """Every attempt is claimed before any is sent; the success is recorded first."""

        def __init__(self, succeeds: bool) -> None:
            self.succeeds = succeeds

        def post(
            self, url: str, headers: Mapping[str, str], body: bytes, timeout: float, **options: Any
        ) -> Outcome:
            claimed.wait()
            if not self.succeeds:
                assert success_recorded.wait(WAIT)
            return default_transport().post(url, headers, body, timeout, **options)

    with environment(WEBHOOKS_ENDPOINT_CONCURRENCY="50"):
        failures = [InThread(i, Ordered(succeeds=False)) for i in ids[1:]]
        success = InThread(ids[0], Ordered(succeeds=True))
        assert success.result().action is Next.NOTHING
        success_recorded.set()
        assert all(f.result().action is Next.RETRY for f in failures)
    healthy = endpoint_now(endpoint_id)
    assert healthy.enabled and healthy.disabled_reason is None
    assert healthy.failing_since is not None
    assert healthy.failing_since > clock.now() - timedelta(minutes=5)


def test_concurrent_claims_never_exceed_the_cap(
    session: Session, tenant: Tenant, receiver: HTTPServer, answers: dict[str, int]
) -> None:
    make_endpoint(session, tenant, receiver)
    ids = [new_delivery(session, tenant) for _ in range(50)]
    start = threading.Barrier(50, timeout=WAIT)
    lock = threading.Lock()
    sending: list[str] = []
    everyone_tried = threading.Event()

    class Counting:
        def post(
            self, url: str, headers: Mapping[str, str], body: bytes, timeout: float, **options: Any
        ) -> Outcome:
            with lock:
                sending.append(url)
            assert everyone_tried.wait(WAIT)
            return default_transport().post(url, headers, body, timeout, **options)

    def claim_together(delivery_id: str) -> None:
        start.wait()
        run(delivery_id, Counting())  # type: ignore[arg-type]

    with environment(WEBHOOKS_ENDPOINT_CONCURRENCY="10"):
        threads = [threading.Thread(target=claim_together, args=(i,)) for i in ids]
        for thread in threads:
            thread.start()

        def settled() -> bool:
            with new_session() as check:
                deferred = check.scalar(
                    text(
                        "SELECT count(*) FROM deliveries WHERE attempts = 0 AND "
                        "(locked_until IS NULL OR locked_until <= statement_timestamp())"
                        " AND next_attempt_at > statement_timestamp()"
                    )
                )
            return len(sending) + (deferred or 0) == 50

        wait_until(settled, WAIT, "every claim to be taken or deferred")
        in_flight_at_peak = len(sending)
        everyone_tried.set()
        for thread in threads:
            thread.join(WAIT)
    assert in_flight_at_peak == 10
    with new_session() as check:
        sent = check.scalar(
            select(func.count()).select_from(Attempt).where(Attempt.delivery_id.in_(ids))
        )
    assert sent == 10


def test_a_delivery_deferred_behind_the_cap_is_due_when_the_earliest_lease_ends(
    session: Session,
    tenant: Tenant,
    receiver: HTTPServer,
    answers: dict[str, int],
    published: list[str],
) -> None:
    """Ten claims hold the cap (as a killed worker's do until their leases end); an old
    delivery that fails its claim then is due again by the earliest lease's end (give or
    take its spread), not as long again as it is old; and the first of the ten attempts to
    succeed releases it into the slot it freed: due at once, and published."""
    make_endpoint(session, tenant, receiver)
    held = [new_delivery(session, tenant) for _ in range(10)]
    old = new_delivery(session, tenant)
    session.execute(
        update(Delivery)
        .where(Delivery.id == old)
        .values(created_at=clock.now() - timedelta(minutes=10))
    )
    session.commit()
    lock = threading.Lock()
    sending: list[str] = []
    go = threading.Event()

    class Holding:
        def post(
            self, url: str, headers: Mapping[str, str], body: bytes, timeout: float, **options: Any
        ) -> Outcome:
            with lock:
                sending.append(url)
            assert go.wait(WAIT), "the test never released the attempts"
            return default_transport().post(url, headers, body, timeout, **options)

    with environment(WEBHOOKS_ENDPOINT_CONCURRENCY="10"):
        holders = [InThread(delivery_id, Holding()) for delivery_id in held]
        try:
            wait_until(lambda: len(sending) == 10, WAIT, "ten attempts in flight")
            step = run(old)
            with new_session() as check:
                earliest, now = check.execute(
                    text(
                        "SELECT min(locked_until), statement_timestamp() FROM deliveries "
                        "WHERE id IN :ids"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"ids": held},
                ).one()
            deferred = delivery(old)
            published.clear()
        finally:
            go.set()
        assert all(holder.result().action is Next.NOTHING for holder in holders)
    assert deferred.hold == Hold.DEFERRED
    released = delivery(old)
    assert released.hold is None and released.next_attempt_at is not None
    assert released.next_attempt_at < deferred.next_attempt_at
    assert published.count(old) == 1
    left = (earliest - now).total_seconds()
    assert 0 < left <= state.lease_seconds(10)
    assert step.action is Next.RETRY and step.delay <= left * (1 + state.LEASE_SPREAD) + 1
    assert deferred.attempts == 0 and deferred.next_attempt_at is not None
    latest = earliest + timedelta(seconds=left * state.LEASE_SPREAD + 0.5)
    assert earliest - timedelta(seconds=0.5) <= deferred.next_attempt_at <= latest


def deferred_behind_the_cap(session: Session, tenant: Tenant, count: int) -> list[str]:
    """``count`` deliveries as a deferral behind the endpoint's cap leaves them: marked,
    due in 30 s, stamped as handed to the broker (their countdown message)."""
    ids = [new_delivery(session, tenant) for _ in range(count)]
    session.execute(
        text(
            "UPDATE deliveries SET hold = 'deferred', locked_until = statement_timestamp(),"
            " next_attempt_at = statement_timestamp() + interval '30 seconds'"
            " WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": ids},
    )
    session.commit()
    return ids


def test_a_release_skips_the_deferred_delivery_another_release_holds(
    session: Session,
    tenant: Tenant,
    receiver: HTTPServer,
    answers: dict[str, int],
    published: list[str],
) -> None:
    """Two successes at once release two different deliveries: the test holds the row lock
    of the oldest deferred delivery, as a concurrent release does in its statement, and a
    success then releases the next one, without waiting for the lock."""
    make_endpoint(session, tenant, receiver)
    succeeding = new_delivery(session, tenant)
    oldest, next_one = deferred_behind_the_cap(session, tenant, 2)
    published.clear()
    with get_engine().connect() as other:
        other.execute(text("SELECT 1 FROM deliveries WHERE id = :id FOR UPDATE"), {"id": oldest})
        step = run(succeeding)
        other.rollback()
    assert step.action is Next.NOTHING
    assert published == [next_one]
    assert delivery(oldest).hold == Hold.DEFERRED and delivery(next_one).hold is None


def test_only_a_success_that_held_its_claim_releases_and_only_a_deferred_delivery(
    session: Session,
    tenant: Tenant,
    receiver: HTTPServer,
    answers: dict[str, int],
    published: list[str],
) -> None:
    """A failure releases nothing (a failing endpoint's backlog keeps its deferral), nor
    does an attempt that lost its claim; a retry waiting on its schedule is not deferred
    behind the cap, and no success makes it due early."""
    make_endpoint(session, tenant, receiver, retry_schedule=[30, 30])
    failing, lost, retry, succeeding, later = (new_delivery(session, tenant) for _ in range(5))
    first, second = deferred_behind_the_cap(session, tenant, 2)
    answers[event_of(failing)] = 500
    answers[event_of(retry)] = 500
    published.clear()
    assert run(failing).action is Next.RETRY
    assert published == []
    paused = PausedTransport()
    attempt = InThread(lost, paused)
    assert paused.sending.wait(WAIT)
    expire_lease(lost)
    assert run(lost).action is Next.NOTHING  # the takeover succeeds, and releases one
    assert published == [first]
    paused.go.set()
    assert attempt.result().action is Next.NOTHING  # the stale attempt releases nothing
    assert published == [first] and delivery(second).hold == Hold.DEFERRED
    assert run(retry).action is Next.RETRY
    assert run(succeeding).action is Next.NOTHING
    assert run(later).action is Next.NOTHING
    assert published == [first, second]  # never the retry on its schedule
    scheduled = delivery(retry)
    assert scheduled.status == "retrying" and scheduled.hold is None
