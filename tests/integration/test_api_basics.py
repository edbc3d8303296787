"""What every route shares: authentication, problem+json errors, body parsing, the docs."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.api_client import Caller, fields_of, problem
from webhooks.admin.tokens import revoke
from webhooks.models import ApiToken, Tenant

ALL_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/tenants",
    "/v1/tenants/{tenant}",
    "/v1/tenants/{tenant}/tokens",
    "/v1/tenants/{tenant}/tokens/{token_id}",
    "/v1/tenants/{tenant}/event-types",
    "/v1/tenants/{tenant}/event-types/{name}",
    "/v1/tenants/{tenant}/endpoints",
    "/v1/tenants/{tenant}/endpoints/{endpoint_id}",
    "/v1/tenants/{tenant}/endpoints/{endpoint_id}/secret",
    "/v1/tenants/{tenant}/endpoints/{endpoint_id}/rotate-secret",
    "/v1/tenants/{tenant}/endpoints/{endpoint_id}/ping",
    "/v1/tenants/{tenant}/events",
    "/v1/tenants/{tenant}/events/{event_id}",
    "/v1/tenants/{tenant}/endpoints/{endpoint_id}/attempts",
    "/v1/tenants/{tenant}/endpoints/{endpoint_id}/stats",
    "/v1/tenants/{tenant}/endpoints/{endpoint_id}/recover",
    "/v1/tenants/{tenant}/deliveries",
    "/v1/tenants/{tenant}/deliveries/{delivery_id}",
    "/v1/tenants/{tenant}/deliveries/{delivery_id}/attempts",
    "/v1/tenants/{tenant}/deliveries/{delivery_id}/redeliver",
    "/v1/tenants/{tenant}/portal-links",
}


def test_healthz_needs_no_token(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_openapi_document_lists_every_route_and_the_bearer_scheme(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == ALL_PATHS
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    error = document["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert set(error) == {"application/problem+json"}


def test_missing_token_is_401_with_a_bearer_challenge(client: FlaskClient) -> None:
    response = client.get("/v1/tenants")
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_other_schemes_and_unknown_tokens_are_401(client: FlaskClient, admin_token: str) -> None:
    for header in (f"Basic {admin_token}", "Bearer", "Bearer nope", f"Bearer {admin_token}x"):
        response = client.get("/v1/tenants", headers={"Authorization": header})
        problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401(admin: Caller, session: Session) -> None:
    assert admin.get("/v1/tenants").status_code == 200
    token = session.scalars(select(ApiToken)).one()
    revoke(token)
    session.commit()
    body = problem(admin.get("/v1/tenants"), 401)
    assert "revoked" in body["detail"]


def test_unknown_route_is_a_404_problem(admin: Caller, client: FlaskClient) -> None:
    problem(admin.get("/v1/nothing-here"), 404)
    problem(client.get("/nothing-here"), 404)


def test_wrong_method_is_a_405_problem_with_allow(admin: Caller) -> None:
    response = admin.delete("/v1/tenants")
    problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_malformed_json_is_400(admin: Caller) -> None:
    for raw in (
        b"{",
        b'{"uid": NaN}',
        b'{"uid": Infinity}',
        b"[" * 100_000,
        b"\xff\xfe{",
        b"1" * 5000,
    ):
        response = admin.post("/v1/tenants", data=raw, content_type="application/json")
        problem(response, 400)


def test_a_body_that_is_not_json_is_415(admin: Caller) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        response = admin.post("/v1/tenants", data="uid=acme", content_type=content_type)
        problem(response, 415)
    response = admin.post(
        "/v1/tenants", data='{"uid": "acme"}', content_type="application/merge-patch+json"
    )
    assert response.status_code == 201


def test_a_body_over_the_cap_is_413(admin: Caller) -> None:
    body = b'{"uid": "' + b"a" * 400_000 + b'"}'
    problem(admin.post("/v1/tenants", data=body, content_type="application/json"), 413)


def test_unknown_and_unstorable_fields_are_named(admin: Caller) -> None:
    assert fields_of(admin.post("/v1/tenants", json={"uid": "acme", "color": "red"})) == {"color"}
    assert fields_of(admin.post("/v1/tenants", json={"uid": "acme", "name": "a\x00b"})) == {"name"}
    assert fields_of(admin.post("/v1/tenants", json={"uid": "acme", "name": "\ud800"})) == {"name"}
    assert fields_of(admin.post("/v1/tenants", json=["acme"])) == {None}


def test_path_segments_that_cannot_name_anything_are_404(admin: Caller, tenant: Tenant) -> None:
    for path in (
        "/v1/tenants/a%00b",
        "/v1/tenants/%ED%A0%80",
        "/v1/tenants/acme/endpoints/ep%00",
        "/v1/tenants/acme/endpoints/not-an-id",
        "/v1/tenants/acme/event-types/a%00b",
        "/v1/tenants/acme/events/evt_%FF",
    ):
        problem(admin.get(path), 404)
    problem(admin.delete("/v1/tenants/acme/tokens/tok%00"), 404)
