"""The history API on Postgres: deliveries with filters and keyset paging, attempts, run
history, redeliver and recover (driving the engine against a local receiver), stats on a
known history, tenant isolation."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.api_client import Caller, fields_of, problem
from tests.integration.history_fixtures import make_attempt, make_delivery, make_endpoint
from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef
from webhooks.core import clock
from webhooks.core.clock import rfc3339
from webhooks.core.db import new_session
from webhooks.delivery import redelivery
from webhooks.delivery.engine import process
from webhooks.models import Attempt, Delivery, Endpoint, Event, Tenant
from webhooks.outbound.http import default_transport

BASE = "/v1/tenants/acme"


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[DeliveryRef]:
    sent: list[DeliveryRef] = []
    monkeypatch.setattr(broker, "publish", lambda refs, **_: sent.extend(refs) or len(refs))
    return sent


@pytest.fixture
def reader(as_tenant: Callable[..., Caller]) -> Caller:
    return as_tenant("events:read", "endpoints:read")


@pytest.fixture
def writer(as_tenant: Callable[..., Caller]) -> Caller:
    return as_tenant("events:read", "events:write", "endpoints:read", "endpoints:write")


@pytest.fixture
def endpoint(session: Session, tenant: Tenant, httpserver: HTTPServer) -> Endpoint:
    return make_endpoint(session, tenant, httpserver.url_for("/hook"), retry_schedule=[])


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.get_json()["data"]]


def run(delivery_id: str) -> None:
    process(delivery_id, default_transport(), rng=random.Random(1))


def test_delivery_filters_combine(
    session: Session, tenant: Tenant, endpoint: Endpoint, reader: Caller
) -> None:
    other = make_endpoint(session, tenant, "https://other.example/hook")
    base = clock.now() - timedelta(hours=3)
    ok = make_delivery(session, endpoint, at=base, status="succeeded")
    failed = make_delivery(session, endpoint, at=base + timedelta(hours=1), status="failed")
    late = make_delivery(session, endpoint, at=base + timedelta(hours=2), status="failed")
    elsewhere = make_delivery(
        session, other, at=base + timedelta(hours=1, seconds=1), status="failed"
    )
    session.commit()

    assert ids(reader.get(f"{BASE}/deliveries")) == [late.id, elsewhere.id, failed.id, ok.id]
    assert ids(reader.get(f"{BASE}/deliveries?endpoint_id={endpoint.id}")) == [
        late.id,
        failed.id,
        ok.id,
    ]
    by_both = reader.get(f"{BASE}/deliveries?endpoint_id={endpoint.id}&status=failed")
    assert ids(by_both) == [late.id, failed.id]
    assert ids(reader.get(f"{BASE}/deliveries?event_id={ok.event_id}")) == [ok.id]
    since, until = rfc3339(base + timedelta(minutes=30)), rfc3339(base + timedelta(minutes=90))
    window = reader.get(
        f"{BASE}/deliveries?status=failed&since={since}&until={until}",
    )
    assert ids(window) == [elsewhere.id, failed.id]
    exact = reader.get(f"{BASE}/deliveries", query_string={"since": rfc3339(late.created_at)})
    assert ids(exact) == [late.id]

    assert fields_of(reader.get(f"{BASE}/deliveries?status=lost")) == {"status"}
    assert fields_of(reader.get(f"{BASE}/deliveries?since=yesterday")) == {"since"}
    assert fields_of(reader.get(f"{BASE}/deliveries?since=2026-11-22T10:00:00")) == {"since"}
    backwards = reader.get(f"{BASE}/deliveries?since={until}&until={since}")
    assert fields_of(backwards) == {"until"}
    assert fields_of(reader.get(f"{BASE}/deliveries?endpoint_id=nope")) == {"endpoint_id"}
    body = reader.get(f"{BASE}/deliveries/{ok.id}").get_json()
    assert body["status"] == "succeeded" and body["endpoint_id"] == endpoint.id
    assert body["created_at"].endswith("Z")


def test_deliveries_filter_on_their_events_type(
    session: Session, tenant: Tenant, endpoint: Endpoint, reader: Caller
) -> None:
    created = make_delivery(session, endpoint)
    cancelled = make_delivery(session, endpoint)
    session.get_one(Event, cancelled.event_id).type = "booking.cancelled"
    session.commit()
    assert ids(reader.get(f"{BASE}/deliveries?event_type=booking.created")) == [created.id]
    both = reader.get(f"{BASE}/deliveries?event_type=booking.cancelled&status=succeeded")
    assert ids(both) == [cancelled.id]
    assert ids(reader.get(f"{BASE}/deliveries?event_type=booking")) == []


def test_keyset_paging_survives_inserts(
    session: Session, tenant: Tenant, endpoint: Endpoint, reader: Caller
) -> None:
    start = clock.now() - timedelta(minutes=10)
    made = [make_delivery(session, endpoint, at=start + timedelta(seconds=i)) for i in range(5)]
    session.commit()
    first = reader.get(f"{BASE}/deliveries?limit=2").get_json()
    # Newer deliveries arrive between two page reads: they do not shift the later pages.
    make_delivery(session, endpoint)
    make_delivery(session, endpoint)
    session.commit()
    seen = [item["id"] for item in first["data"]]
    cursor = first["next_cursor"]
    while cursor:
        page = reader.get(f"{BASE}/deliveries?limit=2&cursor={cursor}").get_json()
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
    assert seen == [d.id for d in reversed(made)]


def test_other_tenants_delivery_is_not_found(
    session: Session,
    tenant: Tenant,
    other_tenant: Tenant,
    endpoint: Endpoint,
    as_tenant: Callable[..., Caller],
) -> None:
    delivery = make_delivery(session, endpoint)
    session.commit()
    them = as_tenant("events:read", "events:write", "endpoints:read", of=other_tenant)
    theirs = "/v1/tenants/globex"
    problem(them.get(f"{theirs}/deliveries/{delivery.id}"), 404)
    problem(them.get(f"{theirs}/deliveries/{delivery.id}/attempts"), 404)
    problem(them.post(f"{theirs}/deliveries/{delivery.id}/redeliver"), 404)
    problem(them.get(f"{theirs}/endpoints/{endpoint.id}/attempts"), 404)
    problem(them.get(f"{theirs}/endpoints/{endpoint.id}/stats"), 404)
    recover = them.post(
        f"{theirs}/endpoints/{endpoint.id}/recover", json={"since": rfc3339(clock.now())}
    )
    problem(recover, 404)
    assert ids(them.get(f"{theirs}/deliveries?endpoint_id={endpoint.id}")) == []
    problem(them.get(f"{BASE}/deliveries"), 403)


def test_redeliver_makes_a_new_attempt_and_keeps_history(
    session: Session,
    tenant: Tenant,
    endpoint: Endpoint,
    httpserver: HTTPServer,
    writer: Caller,
    reader: Caller,
    published: list[DeliveryRef],
) -> None:
    httpserver.expect_oneshot_request("/hook").respond_with_data("down", status=500)
    delivery = make_delivery(session, endpoint, status="pending", attempts=0)
    session.commit()
    run(delivery.id)
    failed = reader.get(f"{BASE}/deliveries/{delivery.id}").get_json()
    assert (failed["status"], failed["attempts"], failed["last_status_code"]) == ("failed", 1, 500)

    problem(reader.post(f"{BASE}/deliveries/{delivery.id}/redeliver"), 403)
    response = writer.post(f"{BASE}/deliveries/{delivery.id}/redeliver")
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["status"] == "pending"
    assert [ref.id for ref in published] == [delivery.id]

    httpserver.expect_oneshot_request("/hook").respond_with_data("thanks", status=200)
    run(delivery.id)
    done = reader.get(f"{BASE}/deliveries/{delivery.id}").get_json()
    assert (done["status"], done["attempts"], done["last_status_code"]) == ("succeeded", 2, 200)
    attempts = reader.get(f"{BASE}/deliveries/{delivery.id}/attempts").get_json()["data"]
    assert [a["attempt"] for a in attempts] == [2, 1]
    assert [a["response"]["status"] for a in attempts] == [200, 500]
    assert attempts[0]["response"]["body"] == "thanks"
    assert attempts[0]["request"]["headers"]["webhook-signature"] == "[redacted]"
    assert attempts[0]["request"]["url"] == endpoint.url


def test_recover_redelivers_the_windows_failures_in_batches(
    session: Session,
    tenant: Tenant,
    endpoint: Endpoint,
    httpserver: HTTPServer,
    writer: Caller,
    monkeypatch: pytest.MonkeyPatch,
    published: list[DeliveryRef],
) -> None:
    now = clock.now()
    old = make_delivery(session, endpoint, at=now - timedelta(days=2), status="failed")
    recent = [
        make_delivery(session, endpoint, at=now - timedelta(hours=h), status="failed")
        for h in (1, 2, 3)
    ]
    make_delivery(session, endpoint, at=now - timedelta(hours=1), status="succeeded")
    session.commit()
    batches: list[int] = []

    def inline(recovery: redelivery.Recovery) -> None:
        batches.append(redelivery.recover_batches(recovery, batch=2))

    monkeypatch.setattr(redelivery, "send_recovery", inline)
    path = f"{BASE}/endpoints/{endpoint.id}/recover"
    assert fields_of(writer.post(path, json={})) == {"since"}
    backwards = {"since": rfc3339(now), "until": rfc3339(now - timedelta(days=1))}
    assert fields_of(writer.post(path, json=backwards)) == {"until"}

    response = writer.post(path, json={"since": rfc3339(now - timedelta(days=1))})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json() == {"deliveries": 3}
    assert batches == [3]
    assert sorted(ref.id for ref in published) == sorted(d.id for d in recent)

    httpserver.expect_request("/hook").respond_with_data("ok")
    for delivery in recent:
        run(delivery.id)
    with new_session() as check:
        states = {
            id_: status for id_, status in check.execute(select(Delivery.id, Delivery.status))
        }
        numbers = check.scalars(select(Attempt.attempt).where(Attempt.delivery_id == recent[0].id))
        assert list(numbers) == [2]
    assert [states[d.id] for d in recent] == ["succeeded"] * 3
    assert states[old.id] == "failed"
    again = writer.post(path, json={"since": rfc3339(now - timedelta(days=1))})
    assert again.get_json() == {"deliveries": 0}


def test_run_history_with_filters(
    session: Session, tenant: Tenant, endpoint: Endpoint, reader: Caller
) -> None:
    start = clock.now() - timedelta(hours=2)
    delivery = make_delivery(session, endpoint, at=start, status="failed", attempts=2)
    first = make_attempt(session, endpoint, at=start, status=500, delivery=delivery)
    timeout = make_attempt(
        session,
        endpoint,
        at=start + timedelta(minutes=30),
        status=None,
        error="timeout",
        delivery=delivery,
        number=2,
    )
    ping = make_attempt(session, endpoint, at=start + timedelta(hours=1), status=200)
    session.commit()
    path = f"{BASE}/endpoints/{endpoint.id}/attempts"
    assert ids(reader.get(path)) == [ping.id, timeout.id, first.id]
    assert ids(reader.get(f"{path}?status=failed")) == [timeout.id, first.id]
    assert ids(reader.get(f"{path}?status=succeeded")) == [ping.id]
    window = {
        "since": rfc3339(start + timedelta(minutes=1)),
        "until": rfc3339(start + timedelta(minutes=31)),
    }
    assert ids(reader.get(path, query_string=window)) == [timeout.id]
    assert fields_of(reader.get(f"{path}?status=pending")) == {"status"}
    [shown] = reader.get(f"{path}?limit=1&status=failed").get_json()["data"]
    assert shown["response"] is None and shown["error"] == "timeout"
    assert shown["request"]["body"] == '{"n": 1}' and shown["delivery_id"] == delivery.id
    paged = reader.get(f"{path}?limit=2").get_json()
    rest = reader.get(f"{path}?limit=2&cursor={paged['next_cursor']}")
    assert ids(rest) == [first.id]


def test_stats_on_a_known_history(
    session: Session,
    tenant: Tenant,
    endpoint: Endpoint,
    reader: Caller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = clock.now().replace(microsecond=0)
    monkeypatch.setattr(clock, "now", lambda: now)
    # Last hour: 4 attempts, 3 ok; 2 deliveries. Earlier today: 2 failures. 3 days ago: 1 ok.
    recent = now - timedelta(minutes=10)
    make_delivery(session, endpoint, at=recent, status="succeeded")
    make_delivery(session, endpoint, at=recent, status="retrying")
    make_delivery(session, endpoint, at=now - timedelta(hours=5), status="failed")
    make_delivery(session, endpoint, at=now - timedelta(days=3), status="succeeded")
    sent = make_delivery(session, endpoint, at=now - timedelta(days=4), status="retrying")
    numbers = itertools.count(1)  # one delivery's attempts are numbered 1..n
    for duration in (100, 200, 300):
        make_attempt(
            session,
            endpoint,
            at=recent,
            status=200,
            duration_ms=duration,
            delivery=sent,
            number=next(numbers),
        )
    make_attempt(
        session, endpoint, at=now - timedelta(minutes=5), status=503, duration_ms=1001,
        delivery=sent, number=next(numbers),
    )  # fmt: skip
    make_attempt(
        session,
        endpoint,
        at=now - timedelta(hours=5),
        status=500,
        duration_ms=50,
        delivery=sent,
        number=next(numbers),
    )
    make_attempt(
        session,
        endpoint,
        at=now - timedelta(minutes=2),
        status=None,
        error="timeout",
        duration_ms=10_000,
        delivery=sent,
        number=next(numbers),
    )
    make_attempt(
        session,
        endpoint,
        at=now - timedelta(days=3),
        status=200,
        duration_ms=400,
        delivery=sent,
        number=next(numbers),
    )
    # PINGs (no delivery): counted apart, in neither the success rate nor the latency.
    for status in (500, 500, 200):
        make_attempt(session, endpoint, at=recent, status=status, duration_ms=7)
    session.commit()

    body = reader.get(f"{BASE}/endpoints/{endpoint.id}/stats").get_json()
    hour, day, week = body["windows"]["1h"], body["windows"]["24h"], body["windows"]["7d"]
    assert hour["deliveries"] == {"pending": 0, "retrying": 1, "succeeded": 1, "failed": 0}
    assert week["deliveries"] == {"pending": 0, "retrying": 2, "succeeded": 2, "failed": 1}
    assert (hour["attempts"], hour["succeeded_attempts"], hour["success_rate"]) == (5, 3, 0.6)
    assert (day["attempts"], day["succeeded_attempts"]) == (6, 3)
    assert (week["attempts"], week["succeeded_attempts"], week["success_rate"]) == (7, 4, 0.5714)
    assert hour["pings"] == week["pings"] == {"attempts": 3, "succeeded": 1}
    # percentile_cont over 100, 200, 300, 1001, 10000: p50 300, p95 8200.2, in whole ms.
    assert hour["latency_ms"] == {"p50": 300.0, "p95": 8200.0}
    assert body["last_success_at"] == rfc3339(recent)
    assert body["last_failure"] == {
        "at": rfc3339(now - timedelta(minutes=2)),
        "status": None,
        "error": "timeout",
    }
    empty = make_endpoint(session, tenant, "https://quiet.example/")
    quiet = reader.get(f"{BASE}/endpoints/{empty.id}/stats").get_json()
    assert quiet["windows"]["7d"]["success_rate"] is None
    assert quiet["windows"]["7d"]["latency_ms"] == {"p50": None, "p95": None}
    assert quiet["last_success_at"] is None and quiet["last_failure"] is None


def test_recovery_task_and_broker_down_fallback(
    session: Session, tenant: Tenant, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import tasks

    now = clock.now()
    failed = [
        make_delivery(session, endpoint, at=now - timedelta(minutes=m), status="failed")
        for m in (1, 2)
    ]
    session.commit()
    since, until = rfc3339(now - timedelta(minutes=90)), rfc3339(now - timedelta(seconds=90))
    assert tasks.recover(endpoint.id, since, until) == 1  # the task, run inline

    class DownBroker:
        def send_task(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("broker down")

    monkeypatch.setattr(broker, "celery_app", DownBroker)
    assert redelivery.start_recovery(session, endpoint, now - timedelta(hours=1)) == 1
    with new_session() as check:
        assert {check.get_one(Delivery, d.id).status for d in failed} == {"pending"}
