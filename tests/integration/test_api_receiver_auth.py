"""The API's ``signing``, ``public_key``, ``auth`` and ``client_certificate``: stored, PINGed as
deliveries are sent, checked on save, and never shown back with a secret part."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme
from pytest_httpserver import HTTPServer
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from werkzeug import Request, Response

from tests.api_client import Caller, fields_of
from tests.tls_receivers import client_certificate
from tests.v1a import verified
from webhooks.core import crypto
from webhooks.models import Attempt, Tenant
from webhooks.outbound import signing

ENDPOINTS = "/v1/tenants/acme/endpoints"

BASIC = {"type": "basic", "username": "hooks", "password": "basic-password-value"}
BEARER = {"type": "bearer", "token": "static-bearer-token-value"}


@pytest.fixture
def receiver(httpserver: HTTPServer) -> str:
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    return httpserver.url_for("/hook")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class Recorder:
    """Every API response body of a test, to scan for secrets at its end."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.bodies: list[str] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.caller.request(method, path, **kwargs)
        self.bodies.append(response.get_data(as_text=True))
        return response


@pytest.fixture
def api(admin: Caller) -> Iterator[Recorder]:
    yield Recorder(admin)


def _create(api: Recorder, **fields: Any) -> dict[str, Any]:
    response = api("POST", ENDPOINTS, json=fields)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def _last(httpserver: HTTPServer) -> Request:
    return httpserver.log[-1][0]


def test_ed25519_endpoint_pings_with_v1a_and_shows_only_its_public_key(
    api: Recorder, tenant: Tenant, receiver: str, httpserver: HTTPServer, session: Session
) -> None:
    endpoint = _create(api, url=receiver, signing="ed25519")
    assert endpoint["signing"] == "ed25519"
    public = endpoint["public_key"]
    assert public.startswith("whpk_") and len(base64.b64decode(public[5:])) == 32
    ping = _last(httpserver)
    assert verified(public, dict(ping.headers), ping.get_data()) == 1
    path = f"{ENDPOINTS}/{endpoint['id']}"
    assert api("GET", path).get_json()["public_key"] == public
    assert api("GET", f"{path}/secret").get_json()["secret"].startswith("whsec_")
    assert not any("whsk_" in body for body in api.bodies)


def test_ed25519_rotation_signs_with_both_keys_newest_first(
    api: Recorder, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    endpoint = _create(api, url=receiver, signing="ed25519", signature_header="X-Signature")
    path, old = f"{ENDPOINTS}/{endpoint['id']}", endpoint["public_key"]
    rotated = api("POST", f"{path}/rotate-secret")
    assert rotated.status_code == 200
    answer = rotated.get_json()
    new = answer["public_key"]
    assert new != old and not {"secret", "signing_key"} & set(answer)  # the endpoint, no key
    assert "whsk_" not in rotated.get_data(as_text=True)
    assert api("GET", path).get_json()["public_key"] == new
    assert api("POST", f"{path}/ping").status_code == 200
    ping = _last(httpserver)
    headers = dict(ping.headers)
    first, second = headers["Webhook-Signature"].split(" ")
    assert verified(new, {**headers, "webhook-signature": first}, ping.get_data()) == 1
    assert verified(old, {**headers, "webhook-signature": second}, ping.get_data()) == 1
    # The hex HMAC header stays keyed with the (unrotated) HMAC secret.
    assert headers["X-Signature"]
    assert not any("whsk_" in body for body in api.bodies)


def test_rotation_to_a_chosen_private_key_is_checked(
    api: Recorder, tenant: Tenant, receiver: str
) -> None:
    endpoint = _create(api, url=receiver, signing="ed25519", verify=False)
    path = f"{ENDPOINTS}/{endpoint['id']}"
    bad = api("POST", f"{path}/rotate-secret", json={"secret": "whsk_short"})
    assert fields_of(bad) == {"secret"}


def test_switching_signing_makes_and_drops_the_key_pair(
    api: Recorder, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    endpoint = _create(api, url=receiver)
    path = f"{ENDPOINTS}/{endpoint['id']}"
    switched = api("PATCH", path, json={"signing": "ed25519"}).get_json()
    assert switched["public_key"].startswith("whpk_")
    ping = _last(httpserver)  # the change was verified with a PING signed the new way
    assert verified(switched["public_key"], dict(ping.headers), ping.get_data()) == 1
    back = api("PATCH", path, json={"signing": "hmac"}).get_json()
    assert (back["signing"], back["public_key"]) == ("hmac", None)
    assert _last(httpserver).headers["webhook-signature"].startswith("v1,")
    assert fields_of(api("PATCH", path, json={"signing": "rsa"})) == {"signing"}


@pytest.mark.parametrize(
    ("auth", "shown", "header"),
    [
        (BASIC, {"type": "basic", "username": "hooks"},
         "Basic aG9va3M6YmFzaWMtcGFzc3dvcmQtdmFsdWU="),
        (BEARER, {"type": "bearer"}, "Bearer static-bearer-token-value"),
    ],
)  # fmt: skip
def test_static_auth_is_sent_redacted_in_history_and_hidden_in_responses(
    api: Recorder,
    tenant: Tenant,
    receiver: str,
    httpserver: HTTPServer,
    session: Session,
    auth: dict[str, str],
    shown: dict[str, str],
    header: str,
) -> None:
    endpoint = _create(api, url=receiver, auth=auth)
    assert endpoint["auth"] == shown
    assert _last(httpserver).headers["Authorization"] == header
    attempts = api("GET", f"{ENDPOINTS}/{endpoint['id']}/attempts").get_json()["data"]
    assert attempts[0]["request"]["headers"]["Authorization"] == "[redacted]"
    stored = session.scalars(select(Attempt)).one()
    assert stored.request_headers["Authorization"] == "[redacted]"
    secret = auth.get("password") or auth["token"]
    assert not any(secret in body for body in api.bodies)


def test_oauth2_endpoint_pings_with_a_fetched_token(
    api: Recorder, tenant: Tenant, httpserver: HTTPServer
) -> None:
    token_requests: list[Request] = []

    def issue(request: Request) -> Response:
        token_requests.append(request)
        body = {"access_token": "oauth-access-token-value", "token_type": "Bearer"}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/token", method="POST").respond_with_handler(issue)
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    auth = {
        "type": "oauth2",
        "token_url": httpserver.url_for("/token"),
        "client_id": "dispatcher",
        "client_secret": "oauth-client-secret-value",
        "scope": "hooks",
    }
    endpoint = _create(api, url=httpserver.url_for("/hook"), auth=auth)
    shown = ("type", "token_url", "client_id", "scope")
    assert endpoint["auth"] == {key: auth[key] for key in shown}
    assert len(token_requests) == 1
    assert _last(httpserver).headers["Authorization"] == "Bearer oauth-access-token-value"
    for secret in ("oauth-client-secret-value", "oauth-access-token-value"):
        assert not any(secret in body for body in api.bodies)


def test_a_failing_token_endpoint_refuses_the_endpoint(
    api: Recorder, tenant: Tenant, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/token").respond_with_data("no", status=401)
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    auth = {"type": "oauth2", "token_url": httpserver.url_for("/token"), "client_id": "a",
            "client_secret": "b"}  # fmt: skip
    response = api("POST", ENDPOINTS, json={"url": httpserver.url_for("/hook"), "auth": auth})
    assert response.status_code == 422
    assert "failed: auth" in response.get_json()["detail"]


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"type": "digest"}, "auth.type"),
        ({"type": "basic", "username": "u"}, "auth.password"),
        ({"type": "basic", "username": "a:b", "password": "p"}, "auth.username"),
        ({"type": "bearer", "token": "t", "password": "p"}, "auth.password"),
        ({"type": "bearer", "token": "line\nbreak"}, "auth.token"),
        ({"type": "bearer", "token": "tökén"}, "auth.token"),
        ({"type": "oauth2", "token_url": "https://10.0.0.1/token", "client_id": "a",
          "client_secret": "b"}, "auth.token_url"),
        ({"type": "oauth2", "token_url": "ftp://x/token", "client_id": "a",
          "client_secret": "b"}, "auth.token_url"),
        ({"type": "oauth2", "client_id": "a", "client_secret": "b"}, "auth.token_url"),
    ],
)  # fmt: skip
def test_invalid_auth_is_a_422_naming_the_field(
    api: Recorder, tenant: Tenant, receiver: str, auth: dict[str, str], field: str
) -> None:
    response = api("POST", ENDPOINTS, json={"url": receiver, "auth": auth, "verify": False})
    assert fields_of(response) == {field}


def test_auth_and_an_authorization_header_clash(
    api: Recorder, tenant: Tenant, receiver: str
) -> None:
    clash = {"url": receiver, "auth": BEARER, "headers": {"authorization": "x"}, "verify": False}
    assert fields_of(api("POST", ENDPOINTS, json=clash)) == {"headers.authorization"}


def test_client_certificate_is_checked_on_save_and_its_key_never_shown(
    api: Recorder, tenant: Tenant, receiver: str, ca: trustme.CA
) -> None:
    given = client_certificate(ca, "acme")
    endpoint = _create(api, url=receiver, client_certificate=given, verify=False)
    shown = endpoint["client_certificate"]
    assert set(shown) == {"cert", "expires_at"} and shown["cert"] == given["cert"]
    assert shown["expires_at"].endswith("Z")
    path = f"{ENDPOINTS}/{endpoint['id']}"
    mismatched = {**given, "key": client_certificate(ca, "other")["key"]}
    assert fields_of(api("PATCH", path, json={"client_certificate": mismatched})) == {
        "client_certificate.key"
    }
    now = datetime.now(UTC)
    expired = client_certificate(
        ca, "old", not_before=now - timedelta(days=10), not_after=now - timedelta(days=1)
    )
    assert fields_of(api("PATCH", path, json={"client_certificate": expired})) == {
        "client_certificate.cert"
    }
    assert fields_of(api("PATCH", path, json={"client_certificate": {"cert": given["cert"]}})) == {
        "client_certificate.key"
    }
    cleared = api("PATCH", path, json={"client_certificate": None, "verify": False}).get_json()
    assert cleared["client_certificate"] is None
    key_body = given["key"].splitlines()[1]
    assert not any(key_body in body for body in api.bodies)


def test_keys_and_credentials_are_encrypted_at_rest(
    api: Recorder, tenant: Tenant, receiver: str, session: Session, ca: trustme.CA
) -> None:
    given = client_certificate(ca, "acme")
    endpoint = _create(
        api, url=receiver, signing="ed25519", auth=BASIC, client_certificate=given, verify=False
    )
    raw = session.execute(
        text("SELECT signing_key, auth, client_certificate FROM endpoints WHERE id = :id"),
        {"id": endpoint["id"]},
    ).one()
    private_key, auth, certificate = (crypto.decrypt(column) for column in raw)
    assert private_key.startswith("whsk_") and not raw[0].startswith("whsk_")
    assert json.loads(auth) == BASIC and BASIC["password"] not in raw[1]
    assert json.loads(certificate) == given and given["key"].splitlines()[1] not in raw[2]
    assert signing.public_key(private_key) == endpoint["public_key"]
