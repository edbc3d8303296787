"""Sending events through the API and reading them back with their deliveries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.api_client import Caller, fields_of, problem
from webhooks.models import Endpoint, Tenant

EVENTS = "/v1/tenants/acme/events"
DELIVERY_FIELDS = {
    "id",
    "event_id",
    "endpoint_id",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "created_at",
    "updated_at",
}


@pytest.fixture
def endpoints(admin: Caller, tenant: Tenant) -> dict[str, str]:
    """Two endpoints of acme (not PINGed): one for booking.*, one for traveller.updated."""
    ids = {}
    for name, filters in (("bookings", ["booking.*"]), ("travellers", ["traveller.updated"])):
        body = {"url": "http://127.0.0.1:9/", "event_types": filters, "verify": False}
        ids[name] = admin.post("/v1/tenants/acme/endpoints", json=body).get_json()["id"]
    return ids


def test_send_fans_out_to_matching_endpoints(admin: Caller, endpoints: dict[str, str]) -> None:
    response = admin.post(EVENTS, json={"type": "booking.created", "data": {"id": "b1"}})
    assert response.status_code == 202
    accepted = response.get_json()
    assert set(accepted) == {"id", "type", "deliveries"}
    assert (accepted["type"], accepted["deliveries"]) == ("booking.created", 1)

    event = admin.get(f"{EVENTS}/{accepted['id']}").get_json()
    assert set(event) == {
        "id",
        "type",
        "timestamp",
        "data",
        "idempotency_key",
        "created_at",
        "deliveries",
    }
    assert event["data"] == {"id": "b1"} and event["timestamp"].endswith("Z")
    [delivery] = event["deliveries"]
    assert set(delivery) == DELIVERY_FIELDS
    assert delivery["endpoint_id"] == endpoints["bookings"] and delivery["status"] == "pending"

    nobody = admin.post(EVENTS, json={"type": "invoice.paid", "data": {}}).get_json()
    assert nobody["deliveries"] == 0


def test_a_repeated_idempotency_key_returns_the_first_event(
    admin: Caller, endpoints: dict[str, str]
) -> None:
    body = {"type": "booking.created", "data": {"n": 1}, "idempotency_key": "k1"}
    first = admin.post(EVENTS, json=body)
    again = admin.post(EVENTS, json={**body, "data": {"n": 2}})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json() == first.get_json()

    by_header = admin.post(
        EVENTS, json={"type": "booking.created", "data": {}}, headers={"Idempotency-Key": "k1"}
    )
    assert by_header.status_code == 200 and by_header.get_json() == first.get_json()
    fresh = admin.post(
        EVENTS, json={"type": "booking.created", "data": {}}, headers={"Idempotency-Key": "k2"}
    )
    assert fresh.status_code == 202
    assert fields_of(admin.post(EVENTS, json=body, headers={"Idempotency-Key": "different"})) == {
        "idempotency_key"
    }
    assert len(admin.get(EVENTS).get_json()["data"]) == 2


def test_list_filters_by_type_and_includes_deliveries(
    admin: Caller, endpoints: dict[str, str]
) -> None:
    for event_type in ("booking.created", "traveller.updated", "booking.cancelled"):
        admin.post(EVENTS, json={"type": event_type, "data": {}})
    listed = admin.get(EVENTS).get_json()
    assert [e["type"] for e in listed["data"]] == [
        "booking.cancelled",
        "traveller.updated",
        "booking.created",
    ]
    assert all(len(e["deliveries"]) == 1 for e in listed["data"])
    bookings = admin.get(f"{EVENTS}?type=booking.created").get_json()["data"]
    assert [e["type"] for e in bookings] == ["booking.created"]
    page = admin.get(f"{EVENTS}?limit=2").get_json()
    rest = admin.get(f"{EVENTS}?limit=2&cursor={page['next_cursor']}").get_json()
    assert len(page["data"]) == 2 and len(rest["data"]) == 1 and rest["next_cursor"] is None


def test_timestamps_need_an_offset_and_come_back_in_utc(admin: Caller, tenant: Tenant) -> None:
    body = {"type": "a.b", "data": {}, "timestamp": "2026-11-22T11:00:00+01:00"}
    created = admin.post(EVENTS, json=body).get_json()
    assert admin.get(f"{EVENTS}/{created['id']}").get_json()["timestamp"] == "2026-11-22T10:00:00Z"
    for bad in ("2026-11-22T10:00:00", "yesterday", "2026-13-01T00:00:00Z", 1700000000):
        assert fields_of(admin.post(EVENTS, json={**body, "timestamp": bad})) == {"timestamp"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": {}}, "type"),
        ({"type": "not a type", "data": {}}, "type"),
        ({"type": "a.b"}, "data"),
        ({"type": "a.b", "data": [1, 2]}, "data"),
        ({"type": "a.b", "data": {"k": "\u0000"}}, "data"),
        ({"type": "a.b", "data": {}, "idempotency_key": ""}, "idempotency_key"),
        ({"type": "a.b", "data": {}, "idempotency_key": "k" * 201}, "idempotency_key"),
    ],
)
def test_invalid_events_are_422(
    admin: Caller, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    assert fields_of(admin.post(EVENTS, json=body)) == {field}


def test_payloads_must_match_the_catalogue_schema(admin: Caller, tenant: Tenant) -> None:
    schema = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
    admin.post("/v1/tenants/acme/event-types", json={"name": "booking.created", "schema": schema})
    assert (
        admin.post(EVENTS, json={"type": "booking.created", "data": {"id": "b1"}}).status_code
        == 202
    )
    assert fields_of(admin.post(EVENTS, json={"type": "booking.created", "data": {"id": 5}})) == {
        "data.id"
    }


def test_a_payload_over_the_limit_is_413(admin: Caller, tenant: Tenant) -> None:
    body = problem(admin.post(EVENTS, json={"type": "a.b", "data": {"x": "a" * 262_200}}), 413)
    assert body["errors"][0]["field"] == "data"


def test_scopes_and_isolation(
    admin: Caller, as_tenant: Callable[..., Caller], tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = admin.post("/v1/tenants/globex/events", json={"type": "a.b", "data": {}}).get_json()
    writer = as_tenant("events:write")
    assert writer.post(EVENTS, json={"type": "a.b", "data": {}}).status_code == 202
    problem(writer.get(EVENTS), 403)
    problem(writer.post("/v1/tenants/globex/events", json={"type": "a.b", "data": {}}), 403)
    reader = as_tenant("events:read")
    problem(reader.post(EVENTS, json={"type": "a.b", "data": {}}), 403)
    assert len(reader.get(EVENTS).get_json()["data"]) == 1
    problem(reader.get(f"{EVENTS}/{theirs['id']}"), 404)
    problem(reader.get("/v1/tenants/globex/events"), 403)
    problem(as_tenant("endpoints:read", "endpoints:write").get(EVENTS), 403)


def test_enabling_an_endpoint_releases_its_waiting_deliveries(
    admin: Caller, tenant: Tenant, session: Session
) -> None:
    body = {"url": "http://127.0.0.1:9/", "enabled": False, "verify": False}
    endpoint_id = admin.post("/v1/tenants/acme/endpoints", json=body).get_json()["id"]
    session.execute(
        update(Endpoint).where(Endpoint.id == endpoint_id).values(disabled_reason="410 Gone")
    )
    session.commit()
    event_id = admin.post(EVENTS, json={"type": "a.b", "data": {}}).get_json()["id"]
    [waiting] = admin.get(f"{EVENTS}/{event_id}").get_json()["deliveries"]
    assert waiting["next_attempt_at"] is None

    enabled = admin.patch(f"/v1/tenants/acme/endpoints/{endpoint_id}", json={"enabled": True})
    assert (enabled.get_json()["enabled"], enabled.get_json()["disabled_reason"]) == (True, None)
    [released] = admin.get(f"{EVENTS}/{event_id}").get_json()["deliveries"]
    assert released["next_attempt_at"] is not None
