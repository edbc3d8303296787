"""The engine's steps on the real database (``responses`` as the receiver): claim, record,
duplicates, the in-flight cap, parking for disabled endpoints, endpoint health."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import responses
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.e2e.broker import environment
from webhooks.admin.tenants import create_tenant
from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef
from webhooks.core import clock
from webhooks.core.db import new_session
from webhooks.delivery import dead_letter, sweeper
from webhooks.delivery.engine import process
from webhooks.delivery.state import Next, release_waiting
from webhooks.ingest.enqueue import ingest
from webhooks.models import Attempt, Delivery, Endpoint, Tenant
from webhooks.outbound.http import Transport
from webhooks.outbound.ssrf import TargetPolicy

URL = "https://receiver.example/hook"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[DeliveryRef]:
    sent: list[DeliveryRef] = []
    monkeypatch.setattr(broker, "publish", lambda refs, **_: sent.extend(refs) or len(refs))
    return sent


@pytest.fixture
def receiver() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def transport() -> Iterator[Transport]:
    sender = Transport(TargetPolicy(), user_agent="webhooks/test")
    yield sender
    sender.close()


@pytest.fixture
def tenant(session: Session) -> Tenant:
    tenant = create_tenant(session, "acme")
    session.commit()
    return tenant


@pytest.fixture
def endpoint(session: Session, tenant: Tenant) -> Endpoint:
    endpoint = Endpoint(
        tenant_id=tenant.id,
        url=URL,
        secret=SECRET,
        api_key_header="X-api-key",
        api_key="key-123",
        retry_schedule=[0, 30, 30],
    )
    session.add(endpoint)
    session.commit()
    return endpoint


def new_delivery(session: Session, tenant: Tenant, data: dict[str, Any] | None = None) -> str:
    result = ingest(session, tenant=tenant, event_type="booking.created", data=data or {"n": 1})
    session.commit()
    with new_session() as check:
        return check.scalars(select(Delivery.id).where(Delivery.event_id == result.event.id)).one()


def state(delivery_id: str) -> Delivery:
    with new_session() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        return delivery


def attempts(delivery_id: str) -> list[Attempt]:
    with new_session() as session:
        query = select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id)
        return list(session.scalars(query))


def endpoint_now(endpoint_id: str) -> Endpoint:
    with new_session() as session:
        found = session.get(Endpoint, endpoint_id)
        assert found is not None
        return found


def run(delivery_id: str, transport: Transport) -> Any:
    return process(delivery_id, transport, rng=random.Random(3))


def test_success_is_recorded_in_one_go(
    session: Session,
    tenant: Tenant,
    endpoint: Endpoint,
    receiver: Any,
    transport: Transport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.add(responses.POST, URL, status=200, body="thanks")
    delivery_id = new_delivery(session, tenant)
    with caplog.at_level(logging.INFO, logger="webhooks.delivery"):
        step = run(delivery_id, transport)
    assert step.action is Next.NOTHING
    done = state(delivery_id)
    assert (done.status, done.attempts, done.last_status_code) == ("succeeded", 1, 200)
    assert done.next_attempt_at is None and done.locked_until is None
    [attempt] = attempts(delivery_id)
    assert (attempt.attempt, attempt.response_status, attempt.response_body) == (1, 200, "thanks")
    assert attempt.request_headers["X-api-key"] == "[redacted]"
    sent = receiver.calls[0].request
    assert sent.headers["X-api-key"] == "key-123" and sent.headers["webhook-id"] == done.event_id
    [line] = [r.getMessage() for r in caplog.records if r.name == "webhooks.delivery"]
    assert delivery_id in line and endpoint.id in line and "status=200" in line
    assert "key-123" not in line and "v1," not in line


def test_failures_retry_on_schedule_then_fail_for_good(
    session: Session, tenant: Tenant, endpoint: Endpoint, receiver: Any, transport: Transport
) -> None:
    receiver.add(responses.POST, URL, status=500, body="down")
    delivery_id = new_delivery(session, tenant)
    step = run(delivery_id, transport)
    assert step.action is Next.RETRY and step.delay == 0 and step.rides_countdown
    assert step.delivery.queue == "retries"
    retrying = state(delivery_id)
    assert (retrying.status, retrying.attempts, retrying.last_status_code) == ("retrying", 1, 500)
    # Stamped as published (the task publishes the countdown), but not claimed.
    assert retrying.locked_until is not None and retrying.locked_until <= clock.now()
    assert endpoint_now(endpoint.id).failing_since is not None

    # Due again now, then in 30 s: a message before then is early and does nothing.
    assert run(delivery_id, transport).delay == 30
    assert run(delivery_id, transport).action is Next.NOTHING
    assert len(attempts(delivery_id)) == 2
    session.execute(update(Delivery).values(next_attempt_at=clock.now()))
    session.commit()
    assert run(delivery_id, transport).action is Next.RETRY
    session.execute(update(Delivery).values(next_attempt_at=clock.now()))
    session.commit()
    last = run(delivery_id, transport)
    assert last.action is Next.DEAD_LETTER and last.delivery.attempts == 4
    failed = state(delivery_id)
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 4, None)
    assert [a.attempt for a in attempts(delivery_id)] == [1, 2, 3, 4]
    # A late duplicate of a message changes nothing.
    assert run(delivery_id, transport).action is Next.NOTHING
    assert len(attempts(delivery_id)) == 4


def test_a_claimed_delivery_is_not_sent_twice(
    session: Session, tenant: Tenant, endpoint: Endpoint, receiver: Any, transport: Transport
) -> None:
    delivery_id = new_delivery(session, tenant)
    held = clock.now() + timedelta(seconds=30)
    session.execute(update(Delivery).values(locked_until=held))
    session.commit()
    assert run(delivery_id, transport).action is Next.NOTHING
    assert len(receiver.calls) == 0 and state(delivery_id).locked_until == held


def test_success_clears_failing_since(
    session: Session, tenant: Tenant, endpoint: Endpoint, receiver: Any, transport: Transport
) -> None:
    session.execute(update(Endpoint).values(failing_since=clock.now() - timedelta(hours=1)))
    session.commit()
    receiver.add(responses.POST, URL, status=202)
    run(new_delivery(session, tenant), transport)
    assert endpoint_now(endpoint.id).failing_since is None


def test_in_flight_cap_defers_without_sending(
    session: Session, tenant: Tenant, endpoint: Endpoint, receiver: Any, transport: Transport
) -> None:
    busy = new_delivery(session, tenant)
    waiting = new_delivery(session, tenant)
    session.execute(
        update(Delivery)
        .where(Delivery.id == busy)
        .values(locked_until=clock.now() + timedelta(seconds=30))
    )
    session.commit()
    with environment(WEBHOOKS_ENDPOINT_CONCURRENCY="1"):
        step = run(waiting, transport)
    assert step.action is Next.RETRY and 1 <= step.delay <= 1.5 and step.rides_countdown
    assert step.delivery.queue == "deliveries"  # still a first attempt
    deferred = state(waiting)
    assert deferred.attempts == 0 and deferred.status == "pending"
    assert deferred.next_attempt_at is not None and deferred.next_attempt_at > clock.now()
    assert len(receiver.calls) == 0


@pytest.mark.parametrize(
    ("lease_left", "shortest", "longest"), [(30.0, 29.5, 46.0), (0.3, 1.0, 1.0)]
)
def test_an_old_delivery_behind_the_cap_waits_only_until_the_earliest_lease_ends(
    session: Session,
    tenant: Tenant,
    endpoint: Endpoint,
    receiver: Any,
    transport: Transport,
    lease_left: float,
    shortest: float,
    longest: float,
) -> None:
    """An hour old, its age alone would defer it ten minutes; the live lease bounds that
    (spread by at most half the time left), and the wait is never under a second."""
    busy = new_delivery(session, tenant)
    waiting = new_delivery(session, tenant)
    session.execute(
        update(Delivery)
        .where(Delivery.id == busy)
        .values(locked_until=clock.now() + timedelta(seconds=lease_left))
    )
    session.execute(
        update(Delivery)
        .where(Delivery.id == waiting)
        .values(created_at=clock.now() - timedelta(hours=1))
    )
    session.commit()
    with environment(WEBHOOKS_ENDPOINT_CONCURRENCY="1"):
        step = run(waiting, transport)
    assert step.action is Next.RETRY and shortest <= step.delay <= longest
    deferred = state(waiting)
    assert deferred.next_attempt_at is not None
    due_in = (deferred.next_attempt_at - clock.now()).total_seconds()
    assert shortest - 1 <= due_in <= longest
    assert len(receiver.calls) == 0


def test_a_failing_endpoints_backlog_keeps_the_age_based_deferral(
    session: Session, tenant: Tenant, endpoint: Endpoint, receiver: Any, transport: Transport
) -> None:
    """A hung endpoint's leases end only to be taken again: its backlog is not brought back
    at every lease's end, but as long again as it is old (ten minutes at most)."""
    busy = new_delivery(session, tenant)
    waiting = new_delivery(session, tenant)
    session.execute(
        update(Delivery)
        .where(Delivery.id == busy)
        .values(locked_until=clock.now() + timedelta(seconds=20))
    )
    session.execute(
        update(Delivery)
        .where(Delivery.id == waiting)
        .values(created_at=clock.now() - timedelta(minutes=5))
    )
    session.execute(update(Endpoint).values(failing_since=clock.now() - timedelta(minutes=5)))
    session.commit()
    with environment(WEBHOOKS_ENDPOINT_CONCURRENCY="1"):
        step = run(waiting, transport)
    assert step.action is Next.RETRY and 299 <= step.delay <= 451
    assert len(receiver.calls) == 0


def test_disabled_endpoint_parks_until_released(
    session: Session,
    tenant: Tenant,
    endpoint: Endpoint,
    receiver: Any,
    transport: Transport,
    published: list[DeliveryRef],
) -> None:
    delivery_id = new_delivery(session, tenant)
    session.execute(update(Endpoint).values(enabled=False))
    session.commit()
    assert run(delivery_id, transport).action is Next.NOTHING
    parked = state(delivery_id)
    assert parked.next_attempt_at is None and parked.status == "pending"
    assert len(receiver.calls) == 0

    published.clear()
    session.execute(update(Endpoint).values(enabled=True))
    assert release_waiting(session, endpoint.id) == 1
    session.commit()
    assert [ref.id for ref in published] == [delivery_id]
    receiver.add(responses.POST, URL, status=200)
    assert run(delivery_id, transport).action is Next.NOTHING
    assert state(delivery_id).status == "succeeded"


def test_410_gone_disables_the_endpoint(
    session: Session, tenant: Tenant, endpoint: Endpoint, receiver: Any, transport: Transport
) -> None:
    receiver.add(responses.POST, URL, status=410)
    delivery_id = new_delivery(session, tenant)
    assert run(delivery_id, transport).action is Next.RETRY
    gone = endpoint_now(endpoint.id)
    assert not gone.enabled and gone.disabled_reason is not None and "410" in gone.disabled_reason
    # Its retry then waits for the endpoint to be enabled again.
    assert run(delivery_id, transport).action is Next.NOTHING
    assert state(delivery_id).next_attempt_at is None


def test_endpoint_failing_for_days_is_disabled(
    session: Session, tenant: Tenant, endpoint: Endpoint, receiver: Any, transport: Transport
) -> None:
    session.execute(update(Endpoint).values(failing_since=clock.now() - timedelta(days=6)))
    session.commit()
    receiver.add(responses.POST, URL, status=500)
    run(new_delivery(session, tenant), transport)
    reason = endpoint_now(endpoint.id).disabled_reason
    assert reason is not None and "failed for 5 days" in reason


def test_unknown_delivery_does_nothing(endpoint: Endpoint, transport: Transport) -> None:
    assert run("dlv_nope", transport).action is Next.NOTHING


def test_a_lost_dead_letter_is_published_again_until_received(
    session: Session,
    tenant: Tenant,
    endpoint: Endpoint,
    receiver: Any,
    transport: Transport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead_letters: list[str] = []
    monkeypatch.setattr(sweeper, "publish_dead_letter", dead_letters.append)
    receiver.add(responses.POST, URL, status=500)
    session.execute(update(Endpoint).values(retry_schedule=[]))
    session.commit()
    delivery_id = new_delivery(session, tenant)
    assert run(delivery_id, transport).action is Next.DEAD_LETTER
    stamped = state(delivery_id).locked_until  # as the worker publishes the dead letter
    assert stamped is not None and stamped <= clock.now()

    window = timedelta(seconds=60)
    sweeper.sweep(now=stamped + window / 2, republish_after=window)
    assert dead_letters == []  # the message may still be on its way
    later = stamped + 2 * window
    sweeper.sweep(now=later, republish_after=window)
    assert dead_letters == [delivery_id]  # lost: published again, and stamped again
    assert state(delivery_id).locked_until == later
    sweeper.sweep(now=later, republish_after=window)
    assert dead_letters == [delivery_id]

    details = dead_letter.handle(delivery_id)
    assert details is not None and details["status"] == "failed"
    assert state(delivery_id).locked_until is None
    sweeper.sweep(now=later + 10 * window, republish_after=window)
    assert dead_letters == [delivery_id]
