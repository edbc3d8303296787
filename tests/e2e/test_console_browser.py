"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
against the real API served over HTTP, a real Celery worker and a receiver on 127.0.0.1, on
Postgres. The receiver verifies signatures with the ``standardwebhooks`` package.

The test run takes the screenshots that ``docs/console.md`` shows (``docs/images/``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pytest_httpserver import HTTPServer
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response
from werkzeug.serving import make_server

from api import create_app
from tests.processes import ROOT, Worker
from webhooks.admin.tenants import create_tenant
from webhooks.admin.tokens import SCOPES, create_token
from webhooks.models import Endpoint

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGES = ROOT / "docs" / "images"
HOSTILE = "<script>document.title='pwned'</script>"
#: How long the browser waits for a delivery to show its outcome.
DELIVERY_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def worker(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    env = {**os.environ, "WEBHOOKS_BROKER_URL": broker_url}
    started = Worker(env, tmp_path_factory.mktemp("console-worker") / "worker.log")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def server(broker_url: str) -> Iterator[str]:
    """The API app under a real HTTP server (werkzeug's, threaded) on 127.0.0.1."""
    httpd = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Receiver:
    """One path of the receiver: answers as told, keeps what it got."""

    def __init__(self, server: HTTPServer, path: str) -> None:
        self.status, self.body = 200, '{"received": true}'
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self.url = server.url_for(path)
        server.expect_request(path, method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append((dict(request.headers), request.get_data()))
            return Response(self.body, status=self.status, content_type="application/json")

    def verified_with(self, secret: str) -> list[dict[str, Any]]:
        return [Webhook(secret).verify(body, headers) for headers, body in self.requests]


@pytest.fixture
def tokens(session: Session, worker: Worker) -> dict[str, str]:
    acme = create_tenant(session, "acme", "Acme")
    globex = create_tenant(session, "globex", "Globex")
    session.flush()
    theirs = Endpoint(tenant_id=globex.id, url="http://127.0.0.1:9/globex", secret="s3cret-globex")
    session.add(theirs)
    _, tenant_token = create_token(session, tenant=acme, scopes=SCOPES)
    _, admin_token = create_token(session, tenant=None)
    session.commit()
    return {"tenant": tenant_token, "admin": admin_token, "globex_endpoint": theirs.id}


def sign_in(page: Page, server: str, token: str) -> None:
    page.goto(f"{server}/console/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server}/console/t/acme/endpoints")


def shoot(page: Page, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / name), full_page=True)


def create_endpoint(page: Page, url: str) -> str:
    page.click("text=New endpoint")
    page.fill("#url", "ftp://not-a-webhook.example/")
    page.click("#save")
    expect(page.locator('.error[data-field="url"]')).to_contain_text("https://")
    page.fill("#url", url)
    page.fill("#description", "Bookings <b>receiver</b>")
    page.click("#save")  # verify is on: saved only because the receiver answered the PING
    expect(page.locator(".notice")).to_have_text("Endpoint created.")
    found = re.search(r"/endpoints/(ep_[0-9A-Z]+)", page.url)
    assert found is not None
    return found[1]


def reveal(page: Page) -> str:
    page.click("#reveal")
    return page.locator("code.secret").inner_text()


def test_a_tenant_manages_an_endpoint_and_follows_its_deliveries(
    browser: Browser, server: str, tokens: dict[str, str], receiver: HTTPServer
) -> None:
    got = Receiver(receiver, "/console-hook")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, server, tokens["tenant"])
    endpoint_id = create_endpoint(page, got.url)
    secret = reveal(page)
    [ping] = got.verified_with(secret)
    assert ping["type"] == "ping"

    page.click("text=Events")
    page.fill("#type", "booking.created")
    page.fill("#data", '{"booking": {"id": 7}}')
    page.click("#send")
    expect(page.locator("table.deliveries .status")).to_have_text(
        "succeeded", timeout=DELIVERY_TIMEOUT_MS
    )
    assert got.verified_with(secret)[1]["data"] == {"booking": {"id": 7}}
    page.click(".delivery-link")
    latest = page.locator(".attempt").first
    expect(latest.locator(".response-status")).to_contain_text("200")
    expect(latest.locator(".response-body")).to_contain_text('"received": true')

    got.status, got.body = 500, HOSTILE
    page.click("#redeliver")
    expect(page.locator(".notice")).to_have_text("Queued again.")
    latest = page.locator(".attempt").first
    expect(latest.locator(".response-status")).to_contain_text("500", timeout=DELIVERY_TIMEOUT_MS)
    expect(latest.locator(".response-body")).to_have_text(HOSTILE)
    assert page.locator("script").count() == 0
    assert page.title() != "pwned" and dialogs == []
    shoot(page, "console-delivery.png")

    page.goto(f"{server}/console/t/acme/endpoints/{endpoint_id}")
    page.click("#rotate")
    expect(page.locator(".notice")).to_contain_text("Secret rotated")
    rotated = reveal(page)
    assert rotated != secret and rotated.startswith("whsec_")
    page.goto(f"{server}/console/t/acme/endpoints/{endpoint_id}?span=1h")
    expect(page.locator(".chart svg rect").first).to_be_attached()
    shoot(page, "console-endpoint.png")
    page.goto(f"{server}/console/t/acme/endpoints")
    expect(page.locator("table.endpoints")).to_contain_text("Bookings <b>receiver</b>")
    shoot(page, "console-endpoints.png")
    context.close()


def test_a_form_posted_without_its_csrf_token_is_refused(
    browser: Browser, server: str, tokens: dict[str, str]
) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, server, tokens["tenant"])
    page.click("text=Events")
    page.locator("#test-event input[name=csrf_token]").evaluate("input => input.remove()")
    page.fill("#type", "booking.created")
    with page.expect_navigation() as navigation:
        page.click("#send")
    response = navigation.value
    assert response is not None and response.status == 403
    expect(page.locator(".error")).to_contain_text("CSRF")
    context.close()


def test_a_portal_link_opens_its_tenants_console_once(
    browser: Browser, server: str, tokens: dict[str, str]
) -> None:
    created = requests.post(
        f"{server}/v1/tenants/acme/portal-links",
        json={},
        headers={"Authorization": f"Bearer {tokens['admin']}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    link = created.json()["url"]
    assert link.startswith(f"{server}/console/portal/")

    first = browser.new_context()
    page = first.new_page()
    page.goto(link)
    expect(page).to_have_url(f"{server}/console/t/acme/endpoints")
    expect(page.locator("header .tenant")).to_have_text("Acme")
    theirs = page.goto(f"{server}/console/t/acme/endpoints/{tokens['globex_endpoint']}")
    assert theirs is not None and theirs.status == 404
    other = page.goto(f"{server}/console/t/globex/endpoints")
    assert other is not None and other.status == 403
    first.close()

    second = browser.new_context()
    again = second.new_page().goto(link)
    assert again is not None and again.status == 401
    assert "already used" in again.text()
    second.close()


def test_screenshots_are_where_the_docs_show_them() -> None:
    """Run last in this module: the journey above wrote them."""
    for name in ("console-endpoints.png", "console-endpoint.png", "console-delivery.png"):
        image = Path(IMAGES / name)
        assert image.exists() and image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
