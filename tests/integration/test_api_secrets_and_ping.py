"""Secrets (reveal, rotation) and PINGs, checked the way a receiver checks them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.api_client import Caller, fields_of, problem
from webhooks.models import Tenant

ENDPOINTS = "/v1/tenants/acme/endpoints"


@pytest.fixture
def receiver(httpserver: HTTPServer) -> str:
    httpserver.expect_request("/hook", method="POST").respond_with_data("thanks", status=200)
    return httpserver.url_for("/hook")


def _create(admin: Caller, **fields: Any) -> str:
    response = admin.post(ENDPOINTS, json=fields)
    assert response.status_code == 201, response.get_json()
    return f"{ENDPOINTS}/{response.get_json()['id']}"


def _signatures(httpserver: HTTPServer) -> list[str]:
    request = httpserver.log[-1][0]
    return str(request.headers["webhook-signature"]).split(" ")


def test_rotation_signs_with_both_secrets_for_a_while(
    admin: Caller, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    path = _create(admin, url=receiver)
    old = admin.get(f"{path}/secret").get_json()["secret"]
    rotated = admin.post(f"{path}/rotate-secret")
    assert rotated.status_code == 200
    assert "secret" not in rotated.get_json() and rotated.get_json()["id"] in path
    assert old not in rotated.get_data(as_text=True)
    new = admin.get(f"{path}/secret").get_json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert admin.get(f"{path}/secret").get_json() == {"secret": new}

    assert admin.post(f"{path}/ping").status_code == 200
    request = httpserver.log[-1][0]
    assert len(_signatures(httpserver)) == 2
    for secret in (new, old):
        Webhook(secret).verify(request.get_data(), dict(request.headers))
    # Newest first: the first signature alone verifies with the new secret.
    only_newest = {**dict(request.headers), "webhook-signature": _signatures(httpserver)[0]}
    Webhook(new).verify(request.get_data(), only_newest)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.get_data(), only_newest)


def test_rotation_to_a_chosen_secret(admin: Caller, tenant: Tenant, receiver: str) -> None:
    path = _create(admin, url=receiver, secret="S3cret!")
    rotated = admin.post(f"{path}/rotate-secret", json={"secret": "S3cret!2"})
    assert rotated.status_code == 200 and "S3cret!2" not in rotated.get_data(as_text=True)
    assert admin.get(f"{path}/secret").get_json() == {"secret": "S3cret!2"}
    assert fields_of(admin.post(f"{path}/rotate-secret", json={"secret": "S3cret!2"})) == {"secret"}
    assert fields_of(admin.post(f"{path}/rotate-secret", json={"secret": "tiny"})) == {"secret"}
    assert fields_of(admin.post(f"{path}/rotate-secret", json={"other": 1})) == {"other"}


def test_hex_signature_header_uses_the_newest_secret(
    admin: Caller, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    path = _create(
        admin, url=receiver, secret="S3cret!", signature_header="X-FacesWebhookSignature"
    )
    ping = httpserver.log[-1][0]
    body = ping.get_data()
    expected = hmac.new(b"S3cret!", body, hashlib.sha256).hexdigest()
    assert ping.headers["X-FacesWebhookSignature"] == expected
    Webhook(b"S3cret!").verify(body, dict(ping.headers))

    admin.post(f"{path}/rotate-secret", json={"secret": "N3w-secret"})
    admin.post(f"{path}/ping")
    ping = httpserver.log[-1][0]
    expected = hmac.new(b"N3w-secret", ping.get_data(), hashlib.sha256).hexdigest()
    assert ping.headers["X-FacesWebhookSignature"] == expected
    for secret in (b"N3w-secret", b"S3cret!"):
        Webhook(secret).verify(ping.get_data(), dict(ping.headers))


def test_ping_returns_the_attempt_with_secrets_redacted(
    admin: Caller, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    path = _create(
        admin,
        url=receiver,
        secret="S3cret!",
        signature_header="X-Sig",
        api_key_header="X-api-key",
        api_key="key-123",
        template='{"kind": "[type]"}',
    )
    response = admin.post(f"{path}/ping")
    assert response.status_code == 200
    attempt = response.get_json()
    assert set(attempt) == {
        "id",
        "delivery_id",
        "attempt",
        "started_at",
        "duration_ms",
        "request",
        "response",
        "error",
        "stale",
    }
    assert (attempt["delivery_id"], attempt["attempt"], attempt["error"]) == (None, 1, None)
    assert attempt["stale"] is False
    assert attempt["started_at"].endswith("Z") and attempt["duration_ms"] >= 0
    assert attempt["request"]["url"] == receiver
    assert attempt["request"]["body"] == '{"kind": "ping"}'
    headers = {k.lower(): v for k, v in attempt["request"]["headers"].items()}
    assert headers["x-api-key"] == headers["x-sig"] == headers["webhook-signature"] == "[redacted]"
    assert attempt["response"]["status"] == 200 and attempt["response"]["body"] == "thanks"
    assert "key-123" not in response.get_data(as_text=True)
    assert httpserver.log[-1][0].headers["X-api-key"] == "key-123"


def test_ping_reports_failures_instead_of_refusing(
    admin: Caller, tenant: Tenant, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("broken", status=500)
    path = _create(admin, url=httpserver.url_for("/hook"), verify=False)
    attempt = admin.post(f"{path}/ping").get_json()
    assert attempt["response"]["status"] == 500 and attempt["error"] is None

    admin.patch(path, json={"url": "http://127.0.0.1:1/", "verify": False})
    attempt = admin.post(f"{path}/ping").get_json()
    assert (attempt["response"], attempt["error"]) == (None, "connection")


def test_secret_routes_need_their_scopes(
    admin: Caller, as_tenant: Callable[..., Caller], tenant: Tenant, receiver: str
) -> None:
    path = _create(admin, url=receiver)
    reader = as_tenant("endpoints:read")
    # A read-only token cannot learn what forges our signatures.
    problem(reader.get(f"{path}/secret"), 403)
    problem(reader.post(f"{path}/rotate-secret"), 403)
    problem(reader.post(f"{path}/ping"), 403)
    problem(as_tenant("events:read").get(f"{path}/secret"), 403)
    writer = as_tenant("endpoints:write")
    assert writer.get(f"{path}/secret").status_code == 200
    assert writer.post(f"{path}/rotate-secret").status_code == 200
    assert writer.post(f"{path}/ping").status_code == 200
