"""The event type catalogue through the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api_client import Caller, fields_of, problem
from webhooks.models import Tenant

BOOKING_SCHEMA = {
    "type": "object",
    "properties": {"booking": {"$ref": "#/$defs/booking"}},
    "required": ["booking"],
    "$defs": {"booking": {"type": "object", "properties": {"id": {"type": "string"}}}},
}


def test_event_type_lifecycle(admin: Caller, tenant: Tenant) -> None:
    body = {"name": "booking.created", "description": "A booking", "schema": BOOKING_SCHEMA}
    response = admin.post("/v1/tenants/acme/event-types", json=body)
    assert response.status_code == 201
    created = response.get_json()
    assert {k: created[k] for k in body} == body

    path = "/v1/tenants/acme/event-types/booking.created"
    assert admin.get(path).get_json() == created
    assert admin.get("/v1/tenants/acme/event-types").get_json()["data"] == [created]

    changed = admin.patch(path, json={"description": "Changed", "schema": None}).get_json()
    assert (changed["description"], changed["schema"]) == ("Changed", None)

    assert admin.delete(path).status_code == 204
    problem(admin.get(path), 404)


def test_duplicate_name_is_409(admin: Caller, tenant: Tenant) -> None:
    assert admin.post("/v1/tenants/acme/event-types", json={"name": "a.b"}).status_code == 201
    problem(admin.post("/v1/tenants/acme/event-types", json={"name": "a.b"}), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "no spaces"}, "name"),
        ({"name": "a..b"}, "name"),
        ({"name": "a.b", "schema": {"type": "nonsense"}}, "schema"),
        ({"name": "a.b", "schema": {"pattern": "("}}, "schema"),
        ({"name": "a.b", "schema": ["not", "an", "object"]}, "schema"),
        ({"name": "a.b", "schema": {"$schema": "https://example.com/mine"}}, "schema.$schema"),
        ({"name": "a.b", "schema": {"$schema": 5}}, "schema.$schema"),
        ({"name": "a.b", "schema": {"$ref": "#/$defs/missing"}}, "schema"),
        ({"name": "a.b", "schema": {"$ref": "https://example.com/schema.json"}}, "schema"),
        # Inside a nested $id, "#/..." points into that subschema, which has no definitions.
        (
            {
                "name": "a.b",
                "schema": {
                    "properties": {"a": {"$id": "https://example.com/a", "$ref": "#/$defs/b"}},
                    "$defs": {"b": {}},
                },
            },
            "schema",
        ),
        ({"name": "a.b", "description": 5}, "description"),
    ],
)
def test_invalid_event_types_are_422(
    admin: Caller, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    assert fields_of(admin.post("/v1/tenants/acme/event-types", json=body)) == {field}


@pytest.mark.parametrize(
    ("schema", "data"),
    [
        (
            {"const": {"$ref": "not a ref"}, "$schema": "http://json-schema.org/draft-07/schema#"},
            {"$ref": "not a ref"},
        ),
        (
            {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "properties": {"id": {"type": "string"}, "x": {"$ref": "#/definitions/d"}},
                "definitions": {"d": {"type": "integer"}},
            },
            {"id": "i", "x": 2},
        ),
        (
            {
                "properties": {"a": {"$ref": "https://example.com/s#/$defs/c"}},
                "$defs": {
                    "s": {"$id": "https://example.com/s", "$defs": {"c": {"type": "integer"}}}
                },
            },
            {"a": 1},
        ),
    ],
)
def test_references_are_resolved_as_validation_resolves_them(
    admin: Caller, tenant: Tenant, schema: dict[str, Any], data: dict[str, Any]
) -> None:
    response = admin.post("/v1/tenants/acme/event-types", json={"name": "a.b", "schema": schema})
    assert response.status_code == 201, response.get_json()
    event = {"type": "a.b", "data": data}
    assert admin.post("/v1/tenants/acme/events", json=event).status_code == 202


def test_scopes_and_isolation(
    admin: Caller, as_tenant: Callable[..., Caller], tenant: Tenant, other_tenant: Tenant
) -> None:
    admin.post("/v1/tenants/globex/event-types", json={"name": "secret.type"})
    reader = as_tenant("endpoints:read")
    assert reader.get("/v1/tenants/acme/event-types").status_code == 200
    problem(reader.post("/v1/tenants/acme/event-types", json={"name": "a.b"}), 403)
    problem(reader.get("/v1/tenants/globex/event-types"), 403)
    problem(reader.get("/v1/tenants/acme/event-types/secret.type"), 404)
    problem(as_tenant("events:write").get("/v1/tenants/acme/event-types"), 403)
    writer = as_tenant("endpoints:write")
    # Authorization comes before validation: a forbidden caller learns nothing from it.
    problem(writer.post("/v1/tenants/globex/event-types", json={"bad": 1}), 403)
    assert writer.post("/v1/tenants/acme/event-types", json={"name": "a.b"}).status_code == 201
