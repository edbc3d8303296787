"""The console through the Flask test client: sessions, CSRF, scopes, portal links, escaping.

The browser flows (a real Chromium against a real server and worker) are in
``tests/e2e/test_console_browser.py``; these pin the rules one request at a time.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from tests.api_client import Caller, problem
from tests.e2e.broker import environment
from webhooks.admin import console_sessions
from webhooks.admin.tokens import SCOPES, create_token, revoke
from webhooks.core.clock import now
from webhooks.core.errors import Unauthenticated
from webhooks.models import Attempt, Endpoint, Tenant

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HEADER_TOKEN = "custom-header-credential"
AUTH_PASSWORD = "receiver-basic-password"
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


class Console:
    """A test client signed in to the console, with its session's CSRF token."""

    def __init__(self, client: FlaskClient, opened: console_sessions.OpenedSession) -> None:
        self.client = client
        self.csrf = opened.row.csrf_token
        client.set_cookie("webhooks_console", opened.key, path="/console")

    def get(self, path: str) -> TestResponse:
        return self.client.get(path)

    def post(self, path: str, csrf: bool = True, **data: str) -> TestResponse:
        form = {"csrf_token": self.csrf, **data} if csrf else data
        return self.client.post(path, data=form)


def sign_in(
    app: Flask, session: Session, tenant: Tenant | None, scopes: tuple[str, ...]
) -> Console:
    _, token = create_token(session, tenant=tenant, scopes=scopes)
    opened = console_sessions.sign_in(session, token)
    session.commit()
    return Console(app.test_client(), opened)


@pytest.fixture
def endpoint(session: Session, tenant: Tenant) -> Endpoint:
    made = Endpoint(
        tenant_id=tenant.id,
        url="http://127.0.0.1:9/hook",
        secret=SECRET,
        description=HOSTILE,
        headers={"X-Api-Token": HEADER_TOKEN, "X-Source": "console"},
        auth={"type": "basic", "username": "hooks", "password": AUTH_PASSWORD},
    )
    session.add(made)
    session.commit()
    return made


@pytest.fixture
def writer(app: Flask, session: Session, tenant: Tenant) -> Console:
    return sign_in(app, session, tenant, SCOPES)


@pytest.fixture
def reader(app: Flask, session: Session, tenant: Tenant) -> Console:
    return sign_in(app, session, tenant, ("endpoints:read", "events:read"))


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def test_signing_in_with_a_token_sets_a_strict_session_cookie(
    client: FlaskClient, session: Session, tenant: Tenant
) -> None:
    _, token = create_token(session, tenant=tenant, scopes=SCOPES)
    session.commit()
    form = client.get("/console/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', text(form))
    assert csrf is not None
    with environment(WEBHOOKS_ALLOW_HTTP="0"):
        response = client.post("/console/signin", data={"token": token, "csrf_token": csrf[1]})
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/t/acme/endpoints"
    [cookie] = [
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("webhooks_console=")
    ]
    attributes = {part.strip().split("=")[0] for part in cookie.split(";")}
    assert {"HttpOnly", "Secure", "Path"} <= attributes
    assert "SameSite=Strict" in cookie and "Path=/console" in cookie


def test_a_wrong_token_or_a_missing_signin_csrf_token_signs_nobody_in(client: FlaskClient) -> None:
    form = client.get("/console/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', text(form))
    assert csrf is not None
    wrong = client.post("/console/signin", data={"token": "wht_nope", "csrf_token": csrf[1]})
    assert wrong.status_code == 401 and "invalid or revoked" in text(wrong)
    assert client.post("/console/signin", data={"token": "wht_nope"}).status_code == 403
    assert client.get("/console/t/acme/endpoints").status_code == 303


def test_a_form_posted_without_its_csrf_token_is_refused(
    writer: Console, endpoint: Endpoint, session: Session
) -> None:
    page = text(writer.get(f"/console/t/acme/endpoints/{endpoint.id}"))
    forms = page.count("<form")
    assert forms >= 6 and page.count(f'name="csrf_token" value="{writer.csrf}"') == forms
    path = f"/console/t/acme/endpoints/{endpoint.id}/enabled"
    assert writer.post(path, csrf=False, enabled="0").status_code == 403
    assert writer.post(path, csrf=True, csrf_token="forged", enabled="0").status_code == 403
    session.refresh(endpoint)
    assert endpoint.enabled
    assert writer.post(path, enabled="0").status_code == 303
    session.refresh(endpoint)
    assert not endpoint.enabled


def test_read_only_scopes_show_no_write_buttons_and_are_refused_anyway(
    reader: Console, endpoint: Endpoint, session: Session
) -> None:
    listing = text(reader.get("/console/t/acme/endpoints"))
    assert endpoint.url in listing and "New endpoint" not in listing
    page = text(reader.get(f"/console/t/acme/endpoints/{endpoint.id}"))
    assert 'method="post"' not in page.replace('action="/console/signout"', "").split("Sign out")[1]
    assert "Rotate secret" not in page and "Reveal secret" not in page
    assert reader.post(f"/console/t/acme/endpoints/{endpoint.id}/rotate-secret").status_code == 403
    assert reader.post(f"/console/t/acme/endpoints/{endpoint.id}/secret").status_code == 403
    assert reader.get("/console/t/acme/endpoints/new").status_code == 403
    session.refresh(endpoint)
    assert endpoint.secret == SECRET


def test_a_tenant_session_sees_its_tenant_only(
    app: Flask, session: Session, writer: Console, other_tenant: Tenant
) -> None:
    theirs = Endpoint(tenant_id=other_tenant.id, url="http://127.0.0.1:9/x", secret=SECRET)
    session.add(theirs)
    session.commit()
    assert writer.get("/console/t/globex/endpoints").status_code == 403
    assert writer.get(f"/console/t/acme/endpoints/{theirs.id}").status_code == 404
    assert writer.get("/console/tenants").status_code == 403
    admin = sign_in(app, session, None, ())
    tenants = text(admin.get("/console/tenants"))
    assert "acme" in tenants and "globex" in tenants
    assert admin.get(f"/console/t/globex/endpoints/{theirs.id}").status_code == 200


def test_sign_out_and_a_revoked_token_end_the_session(
    app: Flask, session: Session, tenant: Tenant
) -> None:
    token, plaintext = create_token(session, tenant=tenant, scopes=SCOPES)
    first = Console(app.test_client(), console_sessions.sign_in(session, plaintext))
    second = Console(app.test_client(), console_sessions.sign_in(session, plaintext))
    session.commit()
    assert first.get("/console/t/acme/endpoints").status_code == 200
    assert first.post("/console/signout").status_code == 303
    first.client.set_cookie("webhooks_console", "", path="/console")
    assert first.get("/console/t/acme/endpoints").status_code == 303
    assert second.get("/console/t/acme/endpoints").status_code == 200
    revoke(token)
    session.commit()
    assert second.get("/console/t/acme/endpoints").status_code == 303


def test_signing_out_ends_the_session_on_the_server(
    app: Flask, session: Session, tenant: Tenant
) -> None:
    _, plaintext = create_token(session, tenant=tenant, scopes=SCOPES)
    opened = console_sessions.sign_in(session, plaintext)
    session.commit()
    console = Console(app.test_client(), opened)
    assert console.post("/console/signout").status_code == 303
    replay = Console(app.test_client(), opened)  # the old cookie, kept by an attacker
    assert replay.get("/console/t/acme/endpoints").status_code == 303


def test_hostile_content_is_escaped_and_no_secret_is_shown_unasked(
    writer: Console, endpoint: Endpoint, session: Session, tenant: Tenant
) -> None:
    session.add(
        Attempt(
            tenant_id=tenant.id, endpoint_id=endpoint.id, attempt=1, started_at=now(),
            duration_ms=12, request_url=endpoint.url, request_headers={"X-Evil": HOSTILE},
            request_body="{}", response_status=500, response_headers={HOSTILE: HOSTILE},
            response_body=HOSTILE,
        )
    )  # fmt: skip
    session.commit()
    pages = (
        "/console/t/acme/endpoints",
        f"/console/t/acme/endpoints/{endpoint.id}",
        f"/console/t/acme/endpoints/{endpoint.id}/edit",
    )
    for path in pages:
        page = writer.get(path)
        assert page.status_code == 200
        body = text(page)
        assert "<script" not in body and "<img" not in body
        assert "&lt;script&gt;" in body
        assert SECRET not in body and HEADER_TOKEN not in body and AUTH_PASSWORD not in body
        assert "<svg" in body or not path.endswith(endpoint.id)  # the charts, drawn on the server
        assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none'
    revealed = writer.post(f"/console/t/acme/endpoints/{endpoint.id}/secret")
    assert SECRET in text(revealed)
    assert revealed.headers["Cache-Control"] == "no-store"


def test_the_csp_forbids_script_and_framing_by_default_and_takes_the_setting(
    writer: Console,
) -> None:
    policy = writer.get("/console/t/acme/endpoints").headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    with environment(WEBHOOKS_CONSOLE_FRAME_ANCESTORS="'self'  https://app.example.com"):
        policy = writer.get("/console/t/acme/endpoints").headers["Content-Security-Policy"]
    assert policy.endswith("frame-ancestors 'self' https://app.example.com")


def test_the_form_shows_the_apis_validation_messages_next_to_the_fields(writer: Console) -> None:
    def errors(**form: str) -> dict[str, str]:
        response = writer.post("/console/t/acme/endpoints/new", **form)
        assert response.status_code == 422
        return dict(re.findall(r'class="error" data-field="([a-z_]*)">([^<]*)<', text(response)))

    assert errors(url="http://127.0.0.1:9/", headers='{"Host": "x"}') == {
        "headers": "header Host is set from the URL and cannot be set"
    }
    assert errors(url="http://127.0.0.1:9/", timeout_seconds="ten") == {
        "timeout_seconds": "must be a whole number"
    }
    assert errors(url="http://127.0.0.1:9/", timeout_seconds="99") == {
        "timeout_seconds": "timeout_seconds must be from 1 to 30"
    }
    assert "https://" in errors(url="ftp://example.com/")["url"]


def test_portal_links_are_single_use_and_bound_to_their_tenant(
    admin: Caller, app: Flask, session: Session, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = admin.post("/v1/tenants/acme/portal-links", json={})
    assert created.status_code == 201
    body = created.get_json()
    assert set(body) == {"url", "expires_at"} and body["expires_at"].endswith("Z")
    path = body["url"].removeprefix("http://localhost")
    assert path.startswith("/console/portal/")
    browser = app.test_client()
    opened = browser.get(path)
    assert opened.status_code == 200 and "/console/t/acme/endpoints" in text(opened)
    assert browser.get("/console/t/acme/endpoints").status_code == 200
    assert browser.get("/console/t/globex/endpoints").status_code == 403
    assert app.test_client().get(path).status_code == 401


def test_portal_links_need_endpoints_write_and_expire(
    client: FlaskClient, session: Session, tenant: Tenant, other_tenant: Tenant
) -> None:
    _, read_only = create_token(session, tenant=tenant, scopes=["endpoints:read"])
    _, writer = create_token(session, tenant=tenant, scopes=["endpoints:write"])
    session.commit()
    url = "/v1/tenants/acme/portal-links"
    problem(Caller(client, read_only).post(url, json={}), 403)
    problem(Caller(client, writer).post("/v1/tenants/globex/portal-links", json={}), 403)
    problem(Caller(client, writer).post(url, json={"expires_in": 0}), 422)
    assert Caller(client, writer).post(url, json={"expires_in": 60}).status_code == 201
    _, key = console_sessions.create_portal_link(session, tenant, 60)
    session.commit()
    with pytest.raises(Unauthenticated):
        console_sessions.redeem_portal_link(session, key, at=now() + timedelta(seconds=61))
    assert console_sessions.redeem_portal_link(session, key).row.tenant_id == tenant.id


def test_list_filters_are_the_apis_arguments(writer: Console, endpoint: Endpoint) -> None:
    bad = writer.get("/console/t/acme/deliveries?endpoint_id=nope&status=lost")
    assert bad.status_code == 400
    assert "endpoint_id: " in text(bad) and "status: " in text(bad)
    since = writer.get("/console/t/acme/deliveries?since=2026-12-01T20:00&status=failed")
    assert since.status_code == 200 and "No deliveries match." in text(since)


def test_editing_keeps_what_the_form_showed_masked(
    writer: Console, endpoint: Endpoint, session: Session
) -> None:
    saved = writer.post(
        f"/console/t/acme/endpoints/{endpoint.id}/edit",
        url=endpoint.url,
        enabled="on",
        headers='{"X-Api-Token": "[redacted]", "X-Source": "edited"}',
        description="plain",
    )
    assert saved.status_code == 303, re.findall(r"class=.error.*", text(saved))
    session.refresh(endpoint)
    assert endpoint.headers == {"X-Api-Token": HEADER_TOKEN, "X-Source": "edited"}
    assert endpoint.secret == SECRET and endpoint.description == "plain"
    assert endpoint.auth is not None and endpoint.auth["password"] == AUTH_PASSWORD


def test_the_form_sets_the_signing_scheme_and_shows_the_public_key(
    writer: Console, session: Session
) -> None:
    created = writer.post(
        "/console/t/acme/endpoints/new",
        url="http://127.0.0.1:9/ed",
        enabled="on",
        signing="ed25519",
        auth='{"type": "bearer", "token": "receiver-bearer"}',
    )
    assert created.status_code == 303, text(created)
    page = text(writer.get(created.headers["Location"]))
    assert "whpk_" in page and '"type": "bearer"' in page and "receiver-bearer" not in page
    refused = writer.post(
        "/console/t/acme/endpoints/new", url="http://127.0.0.1:9/ed", auth='{"type": "magic"}'
    )
    assert refused.status_code == 422 and 'data-field="auth"' in text(refused)


def test_endpoint_pages_show_the_circuit(
    reader: Console, endpoint: Endpoint, session: Session
) -> None:
    listed = text(reader.get("/console/t/acme/endpoints"))
    assert "circuit" in listed and "closed" in listed
    endpoint.circuit, endpoint.circuit_failures = "open", 10
    endpoint.circuit_until = now() + timedelta(seconds=30)
    session.commit()
    assert ">open<" in reader.get("/console/t/acme/endpoints").get_data(as_text=True)
    shown = reader.get(f"/console/t/acme/endpoints/{endpoint.id}").get_data(as_text=True)
    assert "<dt>Circuit</dt><dd>open</dd>" in shown
