"""Payload filters at ingest: a non-matching event creates no delivery for the endpoint, the
same on Postgres's one statement (own connection, or a caller's transaction) and on the
portable path (SQLite here), and the API counts only the deliveries created."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.api_client import Caller
from webhooks import enqueue_event
from webhooks.admin.tenants import create_tenant
from webhooks.broker import publishing as broker
from webhooks.core.db import new_session
from webhooks.ingest.enqueue import ingest
from webhooks.models import Delivery, Endpoint, EventType, Tenant

#: Confirmed bookings over 1,000, or anything tagged VIP; never a test.
FILTER = {
    "$or": [
        {"data.status": "confirmed", "data.amount": {"$gt": 1000}},
        {"data.tags": {"$contains": "vip"}},
    ],
    "$not": {"data.test": True},
}

#: Payloads, and whether each passes :data:`FILTER`.
CASES: list[tuple[dict[str, Any], bool]] = [
    ({"status": "confirmed", "amount": 1500}, True),
    ({"status": "confirmed", "amount": 1000}, False),
    ({"status": "pending", "amount": 5000}, False),
    ({"status": "pending", "tags": ["vip"]}, True),
    ({"status": "confirmed", "amount": 1500, "test": True}, False),
    ({"status": "confirmed", "amount": "1500"}, False),
    ({}, False),
]


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker, "publish", lambda refs, **_: len(refs))


def add_endpoints(session: Session, tenant_id: str) -> tuple[str, str]:
    """A filtered endpoint and an unfiltered one (a JSON null filter: no filter)."""
    filtered = Endpoint(tenant_id=tenant_id, url="https://a.example/", secret="S3cret!")
    filtered.filter = FILTER
    plain = Endpoint(tenant_id=tenant_id, url="https://b.example/", secret="S3cret!")
    plain.filter = None
    session.add_all([filtered, plain])
    session.commit()
    return filtered.id, plain.id


def targets(session: Session, event_id: str) -> set[str]:
    query = select(Delivery.endpoint_id).where(Delivery.event_id == event_id)
    return set(session.scalars(query))


def through_enqueue_event(session: Session, tenant: Tenant, data: dict[str, Any]) -> str:
    return enqueue_event("booking.created", data, tenant="acme")


def through_a_transaction(session: Session, tenant: Tenant, data: dict[str, Any]) -> str:
    result = ingest(session, tenant=tenant, event_type="booking.created", data=data)
    session.commit()
    return result.event.id


@pytest.mark.parametrize("store", [through_enqueue_event, through_a_transaction])
@pytest.mark.parametrize("with_schema", [False, True])
def test_postgres_creates_deliveries_only_for_matching_filters(
    session: Session,
    tenant: Tenant,
    store: Callable[[Session, Tenant, dict[str, Any]], str],
    with_schema: bool,
) -> None:
    filtered, plain = add_endpoints(session, tenant.id)
    if with_schema:  # the schema's second run and the filters' are one
        session.add(EventType(tenant_id=tenant.id, name="booking.created", schema={}))
        session.commit()
    for data, passes in CASES:
        event_id = store(session, tenant, data)
        with new_session() as check:
            assert targets(check, event_id) == ({filtered, plain} if passes else {plain}), data


def test_an_idempotent_repeat_through_filters_creates_nothing(
    session: Session, tenant: Tenant
) -> None:
    add_endpoints(session, tenant.id)
    data = {"status": "confirmed", "amount": 2000}
    first = enqueue_event("booking.created", data, tenant="acme", idempotency_key="k")
    assert enqueue_event("booking.created", data, tenant="acme", idempotency_key="k") == first
    with new_session() as check:
        assert len(targets(check, first)) == 2


def test_the_envelope_paths_type_id_and_timestamp_are_filterable(
    session: Session, tenant: Tenant
) -> None:
    only = Endpoint(tenant_id=tenant.id, url="https://a.example/", secret="S3cret!")
    only.filter = {"type": {"$ne": "booking.deleted"}, "timestamp": {"$gte": "2026-01-01"}}
    session.add(only)
    session.commit()
    old = enqueue_event("booking.created", {}, tenant="acme", timestamp="2025-06-01T00:00:00Z")
    new = enqueue_event("booking.created", {}, tenant="acme", timestamp="2026-06-01T00:00:00Z")
    deleted = enqueue_event("booking.deleted", {}, tenant="acme")
    with new_session() as check:
        assert [len(targets(check, e)) for e in (old, new, deleted)] == [0, 1, 0]


def test_the_portable_path_evaluates_the_same(sqlite_session: Session) -> None:
    tenant = create_tenant(sqlite_session, "acme")
    sqlite_session.commit()
    filtered, plain = add_endpoints(sqlite_session, tenant.id)
    for data, passes in CASES:
        result = ingest(sqlite_session, tenant=tenant, event_type="booking.created", data=data)
        sqlite_session.commit()
        assert result.deliveries == (2 if passes else 1)
        expected = {filtered, plain} if passes else {plain}
        assert targets(sqlite_session, result.event.id) == expected, data


def test_post_events_counts_only_the_deliveries_created(
    admin: Caller, session: Session, tenant: Tenant
) -> None:
    add_endpoints(session, tenant.id)
    for data, passes in CASES:
        response = admin.post("/v1/tenants/acme/events", json={"type": "booking.x", "data": data})
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["deliveries"] == (2 if passes else 1)
