"""Tenants, tokens and list pagination through the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api_client import Caller, fields_of, problem
from webhooks.models import Tenant


def test_tenant_lifecycle(admin: Caller) -> None:
    response = admin.post("/v1/tenants", json={"uid": "acme", "name": "Acme"})
    assert response.status_code == 201
    created = response.get_json()
    assert set(created) == {"id", "uid", "name", "created_at", "updated_at"}
    assert created["id"].startswith("ten_") and created["created_at"].endswith("Z")

    for ref in (created["id"], "acme"):
        assert admin.get(f"/v1/tenants/{ref}").get_json() == created
    renamed = admin.patch("/v1/tenants/acme", json={"name": "Acme Inc"}).get_json()
    assert (renamed["uid"], renamed["name"]) == ("acme", "Acme Inc")

    assert admin.delete("/v1/tenants/acme").status_code == 204
    problem(admin.get("/v1/tenants/acme"), 404)
    problem(admin.delete("/v1/tenants/acme"), 404)


def test_duplicate_uid_is_409_and_bad_uid_422(admin: Caller) -> None:
    assert admin.post("/v1/tenants", json={"uid": "acme"}).status_code == 201
    problem(admin.post("/v1/tenants", json={"uid": "acme"}), 409)
    for uid in ("", "-x", "ten_abc", "a" * 65, "has space"):
        assert fields_of(admin.post("/v1/tenants", json={"uid": uid})) == {"uid"}
    assert fields_of(admin.post("/v1/tenants", json={})) == {"uid"}
    assert fields_of(admin.patch("/v1/tenants/acme", json={"uid": "other"})) == {"uid"}


def test_tenant_tokens_cannot_manage_tenants(
    as_tenant: Callable[..., Caller], tenant: Tenant, other_tenant: Tenant
) -> None:
    caller = as_tenant("endpoints:read", "endpoints:write", "events:read", "events:write")
    problem(caller.get("/v1/tenants"), 403)
    problem(caller.post("/v1/tenants", json={"uid": "mine"}), 403)
    problem(caller.patch("/v1/tenants/acme", json={"name": "x"}), 403)
    problem(caller.delete("/v1/tenants/acme"), 403)
    problem(caller.post("/v1/tenants/acme/tokens", json={"scopes": ["events:read"]}), 403)
    # Its own tenant is readable; another tenant's path is forbidden, existing or not.
    assert caller.get("/v1/tenants/acme").get_json()["id"] == tenant.id
    assert caller.get(f"/v1/tenants/{tenant.id}").status_code == 200
    problem(caller.get("/v1/tenants/globex"), 403)
    problem(caller.get("/v1/tenants/no-such-tenant"), 403)


def test_issued_token_works_with_its_scopes_only(admin: Caller, tenant: Tenant) -> None:
    response = admin.post("/v1/tenants/acme/tokens", json={"scopes": ["endpoints:read"]})
    assert response.status_code == 201
    issued = response.get_json()
    assert set(issued) == {"id", "token", "scopes"} and issued["scopes"] == ["endpoints:read"]
    caller = Caller(admin.client, issued["token"])
    assert caller.get("/v1/tenants/acme/endpoints").status_code == 200
    problem(caller.post("/v1/tenants/acme/endpoints", json={}), 403)
    problem(caller.get("/v1/tenants/acme/events"), 403)


def test_token_list_never_shows_values_and_revoke_stops_a_token(
    admin: Caller, tenant: Tenant
) -> None:
    issued = admin.post("/v1/tenants/acme/tokens", json={"scopes": ["events:read"]}).get_json()
    listed = admin.get("/v1/tenants/acme/tokens")
    assert issued["token"] not in listed.get_data(as_text=True)
    [token] = listed.get_json()["data"]
    assert set(token) == {"id", "scopes", "created_at", "revoked_at"}
    assert token["revoked_at"] is None

    caller = Caller(admin.client, issued["token"])
    assert caller.get("/v1/tenants/acme/events").status_code == 200
    assert admin.delete(f"/v1/tenants/acme/tokens/{issued['id']}").status_code == 204
    assert admin.delete(f"/v1/tenants/acme/tokens/{issued['id']}").status_code == 204
    problem(caller.get("/v1/tenants/acme/events"), 401)
    assert admin.get("/v1/tenants/acme/tokens").get_json()["data"][0]["revoked_at"]


def test_token_of_another_tenant_is_not_found_under_this_one(
    admin: Caller, tenant: Tenant, other_tenant: Tenant
) -> None:
    issued = admin.post("/v1/tenants/globex/tokens", json={"scopes": ["events:read"]}).get_json()
    problem(admin.delete(f"/v1/tenants/acme/tokens/{issued['id']}"), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["events:read", "everything"]}, "scopes.1"),
        ({"scopes": []}, "scopes"),
        ({}, "scopes"),
        ({"scopes": "events:read"}, "scopes"),
    ],
)
def test_invalid_scopes_are_422(
    admin: Caller, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    assert fields_of(admin.post("/v1/tenants/acme/tokens", json=body)) == {field}


def _create_tenants(admin: Caller, prefix: str, count: int) -> list[str]:
    return [
        admin.post("/v1/tenants", json={"uid": f"{prefix}{n}"}).get_json()["id"]
        for n in range(count)
    ]


def test_pagination_is_stable_across_inserts(admin: Caller) -> None:
    existing = set(_create_tenants(admin, "t", 10))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = admin.get(f"/v1/tenants{query}").get_json()
        assert len(body["data"]) <= 3
        seen.extend(tenant["id"] for tenant in body["data"])
        _create_tenants(admin, f"new{pages}-", 2)  # inserted between two page reads
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a tenant was listed twice"
    assert existing <= set(seen), "a tenant that existed was skipped"
    assert seen == sorted(seen, reverse=True), "not newest first"
    assert pages == 4


def test_default_and_maximum_limits(admin: Caller) -> None:
    _create_tenants(admin, "t", 60)
    first = admin.get("/v1/tenants").get_json()
    assert len(first["data"]) == 50 and first["next_cursor"]
    assert len(admin.get("/v1/tenants?limit=250").get_json()["data"]) == 60
    assert admin.get("/v1/tenants?limit=250").get_json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=251", "limit"),
        ("limit=abc", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=%FF", "cursor"),
        ("cursor=ZXZ0X2Zvbw", "cursor"),  # base64 of "evt_foo": not an id
    ],
)
def test_bad_limit_or_cursor_is_422(admin: Caller, query: str, field: str) -> None:
    assert fields_of(admin.get(f"/v1/tenants?{query}")) == {field}
