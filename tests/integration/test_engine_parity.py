"""One engine, two storage paths: the same scenarios on Postgres (prepared statements) and
on SQLite (the portable path) leave the same rows.

Scenarios: event-type matching and fan-out, a repeated idempotency key, a success, a retry,
a final failure with its dead letter, and a delivery parked for a disabled endpoint.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from tests.e2e.broker import environment
from webhooks.admin.tenants import create_tenant
from webhooks.broker import publishing as broker
from webhooks.core import clock
from webhooks.core.db import new_session
from webhooks.delivery.engine import process
from webhooks.delivery.state import Next
from webhooks.ingest.enqueue import enqueue_event
from webhooks.models import Attempt, Delivery, Endpoint
from webhooks.ops import migrate
from webhooks.outbound.http import default_transport

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

#: label -> (path, event_types, enabled, retry_schedule)
ENDPOINTS: dict[str, tuple[str, list[str], bool, list[int] | None]] = {
    "prefix": ("/ok", ["booking.*"], True, None),
    "exact": ("/ok", ["booking.created"], True, None),
    "all": ("/fail", [], True, [0, 0]),
    "other": ("/ok", ["invoice.paid", "booking"], True, None),
    "paused": ("/ok", ["booking.created"], False, None),
}


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    monkeypatch.setattr(broker, "publish", lambda refs, **_: sent.extend(r.id for r in refs) or 0)
    monkeypatch.setattr(broker, "publish_dead_letter", lambda delivery_id: True)
    return sent


@pytest.fixture
def answering(receiver: HTTPServer) -> Iterator[HTTPServer]:
    receiver.expect_request("/ok").respond_with_data("thanks", status=200)
    receiver.expect_request("/fail").respond_with_data("down", status=500)
    yield receiver
    receiver.clear()


def scenario(receiver: HTTPServer) -> dict[str, Any]:
    """Run every scenario on the configured database; what it left, without ids or times."""
    with new_session() as session:
        tenant = create_tenant(session, f"parity-{os.urandom(3).hex()}")
        session.flush()
        labels = {}
        for label, (path, types, enabled, schedule) in ENDPOINTS.items():
            endpoint = Endpoint(
                tenant_id=tenant.id,
                url=receiver.url_for(path),
                secret=SECRET,
                event_types=types,
                enabled=enabled,
                retry_schedule=schedule,
            )
            session.add(endpoint)
            session.flush()
            labels[endpoint.id] = label
        session.commit()
        tenant_id = tenant.id
    first = enqueue_event("booking.created", {"n": 1}, tenant=tenant_id, idempotency_key="k")
    again = enqueue_event("booking.created", {"n": 2}, tenant=tenant_id, idempotency_key="k")
    with new_session() as session:
        ids = list(session.scalars(select(Delivery.id).where(Delivery.event_id == first)))
    steps = []
    for delivery_id in sorted(ids):
        for _ in range(4):  # as many messages as the longest schedule needs, and one more
            step = process(delivery_id, default_transport(), rng=random.Random(1))
            steps.append(step.action)
            if step.action is not Next.RETRY:
                break
    with new_session() as session:
        deliveries = sorted(
            (
                labels[d.endpoint_id],
                d.status,
                d.attempts,
                d.last_status_code,
                d.next_attempt_at is None,
                d.locked_until is None,
                d.claims,
            )
            for d in session.scalars(select(Delivery).where(Delivery.event_id == first))
        )
        attempts = sorted(
            (labels[a.endpoint_id], a.attempt, a.response_status, a.error, a.stale)
            for a in session.scalars(select(Attempt).where(Attempt.tenant_id == tenant_id))
        )
    return {
        "same event": first == again,
        "steps": sorted(steps),
        "deliveries": deliveries,
        "attempts": attempts,
    }


def test_postgres_and_sqlite_leave_the_same_rows(
    clean_db: None, answering: HTTPServer, tmp_path: Path
) -> None:
    on_postgres = scenario(answering)
    sqlite_url = f"sqlite:///{tmp_path}/parity.sqlite3"
    with environment(WEBHOOKS_DATABASE_URL=sqlite_url):
        migrate.upgrade(sqlite_url)
        on_sqlite = scenario(answering)
    assert on_postgres == on_sqlite
    # And what they agree on is right.
    assert on_postgres["same event"] is True
    assert on_postgres["deliveries"] == [
        ("all", "failed", 3, 500, True, False, 3),  # its dead letter's stamp
        ("exact", "succeeded", 1, 200, True, True, 1),
        ("paused", "pending", 0, None, True, True, 0),  # parked: no due time
        ("prefix", "succeeded", 1, 200, True, True, 1),
    ]
    assert on_postgres["attempts"] == [
        ("all", 1, 500, None, False),
        ("all", 2, 500, None, False),
        ("all", 3, 500, None, False),
        ("exact", 1, 200, None, False),
        ("prefix", 1, 200, None, False),
    ]


def deferred_behind_a_lease(receiver: HTTPServer, lease_left: float) -> tuple[float, float]:
    """An hour-old delivery, deferred behind the cap (1) held by a lease ``lease_left`` s from
    now: the delay it was given and how far ahead its due time is."""
    with new_session() as session:
        tenant = create_tenant(session, f"defer-{os.urandom(3).hex()}")
        session.add(Endpoint(tenant_id=tenant.id, url=receiver.url_for("/ok"), secret=SECRET))
        session.commit()
        tenant_id = tenant.id
    event_ids = [enqueue_event("booking.created", {"n": n}, tenant=tenant_id) for n in (1, 2)]
    with new_session() as session:
        busy, waiting = (
            session.scalars(select(Delivery).where(Delivery.event_id == event_id)).one()
            for event_id in event_ids
        )
        busy.locked_until = clock.now() + timedelta(seconds=lease_left)
        waiting.created_at = clock.now() - timedelta(hours=1)
        waiting_id = waiting.id
        session.commit()
    with environment(WEBHOOKS_ENDPOINT_CONCURRENCY="1"):
        step = process(waiting_id, default_transport(), rng=random.Random(1))
    assert step.action is Next.RETRY
    with new_session() as session:
        due = session.get_one(Delivery, waiting_id).next_attempt_at
    assert due is not None
    return step.delay, (due - clock.now()).total_seconds()


TIME_ROUNDING = 0.001


@pytest.mark.parametrize(("lease_left", "shortest", "longest"), [(30.0, 29.0, 46.0), (0.3, 0, 1.0)])
def test_both_paths_defer_no_later_than_the_earliest_lease_ends(
    clean_db: None,
    answering: HTTPServer,
    tmp_path: Path,
    lease_left: float,
    shortest: float,
    longest: float,
) -> None:
    on_postgres = deferred_behind_a_lease(answering, lease_left)
    sqlite_url = f"sqlite:///{tmp_path}/defer.sqlite3"
    with environment(WEBHOOKS_DATABASE_URL=sqlite_url):
        migrate.upgrade(sqlite_url)
        on_sqlite = deferred_behind_a_lease(answering, lease_left)
    for delay, due_in in (on_postgres, on_sqlite):
        # SQLite's times are julianday doubles: a millisecond either way is their rounding.
        assert max(shortest, 0.99) <= delay <= longest + TIME_ROUNDING
        assert shortest <= due_in <= longest + TIME_ROUNDING
