"""End to end: a real gevent worker delivering to receivers on 127.0.0.1 that authenticate us,
configured through the API as a tenant would.

- ed25519 endpoints: every delivery verifies with ``cryptography``'s verifier and the API's
  ``public_key`` alone, during a rotation too;
- Basic and Bearer arrive as sent, on a redelivery too;
- OAuth2: one token request for 50 deliveries, another once the token expires, one more when
  the receiver answers 401;
- mutual TLS: a receiver requiring client certificates (a ``trustme`` CA) accepts the endpoint
  that has one and refuses the endpoint that has none.

Each test ends by scanning what could leak (API responses, the API's and the worker's logs and
``/metrics``, the attempt rows) for every secret value it used.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import requests
import trustme
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug import Request, Response

from api import create_app
from tests.api_client import Caller
from tests.e2e.test_delivery_e2e import attempts, wait_for_status
from tests.processes import Worker
from tests.services import free_port, wait_until
from tests.tls_receivers import MutualTLSReceiver, client_certificate, write_ca
from tests.v1a import verified
from webhooks import enqueue_event
from webhooks.admin.tenants import create_tenant
from webhooks.admin.tokens import create_token
from webhooks.core.db import new_session
from webhooks.models import Attempt, Delivery, Endpoint

pytestmark = pytest.mark.e2e

ENDPOINTS = "/v1/tenants/acme/endpoints"

#: Lifetime of the test token server's tokens: long enough for 50 deliveries, short enough to
#: wait out. A token is used until a tenth of its lifetime before it expires.
TOKEN_LIFETIME = 15


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def worker_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def worker(
    broker_url: str,
    ca: trustme.CA,
    worker_metrics_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    directory = tmp_path_factory.mktemp("auth-worker")
    env = {
        **os.environ,
        "WEBHOOKS_BROKER_URL": broker_url,
        "WEBHOOKS_CA_BUNDLE": write_ca(ca, directory),
        "WEBHOOKS_METRICS_PORT": str(worker_metrics_port),
    }
    started = Worker(env, directory / "worker.log")
    yield started
    started.stop()


class Api:
    """The API in this process, as the tenant's admin; keeps every response body it got, and
    (``log``) what this process logged meanwhile."""

    def __init__(self, client: FlaskClient, token: str, log: pytest.LogCaptureFixture) -> None:
        self.caller = Caller(client, token)
        self.bodies: list[str] = []
        self.log = log

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.caller.request(method, path, **kwargs)
        self.bodies.append(response.get_data(as_text=True))
        assert response.status_code < 300, response.get_data(as_text=True)
        return response.get_json()

    def endpoint(self, **fields: Any) -> dict[str, Any]:
        created: dict[str, Any] = self(
            "POST", ENDPOINTS, json={"verify": False, "event_types": [], **fields}
        )
        return created


@pytest.fixture
def api(
    session: Session, worker: Worker, receiver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> Iterator[Api]:
    caplog.set_level(logging.DEBUG)
    create_tenant(session, "acme")
    _, token = create_token(session, tenant=None)
    session.commit()
    yield Api(create_app({"TESTING": True}).test_client(), token, caplog)
    receiver.clear()


class Recorded:
    """What the receiver got on one path; answers 401 to the ``Authorization`` values in
    :attr:`refuse` and ``status`` to the others."""

    def __init__(self, server: HTTPServer, path: str, status: int = 200) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.refuse: set[str] = set()
        self.status = status
        self._lock = threading.Lock()
        self.url = server.url_for(path)
        server.expect_request(path, method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        with self._lock:
            self.requests.append((headers, request.get_data()))
        if headers.get("authorization") in self.refuse:
            return Response("", status=401)
        return Response("", status=self.status)

    def authorizations(self) -> list[str | None]:
        return [headers.get("authorization") for headers, _ in self.requests]


def assert_nothing_leaks(api: Api, worker: Worker, port: int, secrets: Iterable[str]) -> None:
    """No secret value in any API response, the worker's log, either ``/metrics``, or any
    attempt row."""
    with new_session() as session:
        rows = [
            json.dumps([a.request_url, a.request_headers, a.request_body, a.response_headers,
                        a.response_body, a.error])
            for a in session.scalars(select(Attempt))
        ]  # fmt: skip
    places = {
        "API responses": "\n".join(api.bodies),
        "the API's log": api.log.text,
        "the worker's log": worker.log.read_text(errors="replace"),
        "the API's /metrics": api.caller.get("/metrics").get_data(as_text=True),
        "the worker's /metrics": requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text,
        "attempt rows": "\n".join(rows),
    }
    assert rows and places["the worker's /metrics"]
    for secret in secrets:
        for where, text in places.items():
            assert secret not in text, f"a secret value is in {where}"


def private_key_of(endpoint_id: str) -> str:
    """The endpoint's ``whsk_`` key from the database: only to check that nothing leaks it."""
    with new_session() as session:
        endpoint = session.get(Endpoint, endpoint_id)
        assert endpoint is not None and endpoint.signing_key is not None
        return endpoint.signing_key


def test_ed25519_deliveries_verify_with_the_public_key_also_during_a_rotation(
    api: Api, receiver: HTTPServer, worker: Worker, worker_metrics_port: int
) -> None:
    got = Recorded(receiver, "/ed25519")
    endpoint = api.endpoint(url=got.url, signing="ed25519")
    path, old = f"{ENDPOINTS}/{endpoint['id']}", endpoint["public_key"]
    keys = [private_key_of(endpoint["id"])]
    before = [enqueue_event("booking.created", {"n": n}, tenant="acme") for n in range(3)]
    for event_id in before:
        wait_for_status(event_id, "succeeded")
    assert [verified(old, headers, body) for headers, body in got.requests] == [1, 1, 1]

    new = api("POST", f"{path}/rotate-secret")["public_key"]
    keys.append(private_key_of(endpoint["id"]))
    assert api("GET", path)["public_key"] == new != old
    wait_for_status(enqueue_event("booking.created", {"n": 3}, tenant="acme"), "succeeded")
    headers, body = got.requests[-1]
    newest, older = headers["webhook-signature"].split(" ")
    assert verified(new, {**headers, "webhook-signature": newest}, body) == 1
    assert verified(old, {**headers, "webhook-signature": older}, body) == 1
    assert json.loads(body)["data"] == {"n": 3}
    assert_nothing_leaks(api, worker, worker_metrics_port, keys)


def test_basic_and_bearer_arrive_as_sent_also_on_a_redelivery(
    api: Api, receiver: HTTPServer, worker: Worker, worker_metrics_port: int
) -> None:
    basic = Recorded(receiver, "/basic", status=500)
    bearer = Recorded(receiver, "/bearer")
    api.endpoint(
        url=basic.url,
        retry_schedule=[],
        auth={"type": "basic", "username": "hooks", "password": "e2e-basic-password"},
    )
    # Verified: the API itself sends a PING with the token, before the worker's delivery.
    api.endpoint(
        url=bearer.url,
        auth={"type": "bearer", "token": "e2e-static-bearer-token"},
        verify=True,
    )
    event_id = enqueue_event("booking.created", {}, tenant="acme")
    failed = delivery_of(event_id, basic.url)
    wait_for_status_of(failed, "failed")
    wait_for_status_of(delivery_of(event_id, bearer.url), "succeeded")
    basic.status = 200
    api("POST", f"/v1/tenants/acme/deliveries/{failed}/redeliver")
    wait_for_status_of(failed, "succeeded")
    expected = "Basic aG9va3M6ZTJlLWJhc2ljLXBhc3N3b3Jk"  # base64 of hooks:e2e-basic-password
    assert basic.authorizations() == [expected, expected]
    assert bearer.authorizations() == ["Bearer e2e-static-bearer-token"] * 2  # PING, delivery
    assert_nothing_leaks(
        api,
        worker,
        worker_metrics_port,
        ["e2e-basic-password", "e2e-static-bearer-token", expected.split(" ")[1]],
    )


def delivery_of(event_id: str, url: str) -> str:
    """The id of the event's delivery to the endpoint at ``url``."""
    with new_session() as session:
        return session.scalars(
            select(Delivery.id)
            .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
            .where(Delivery.event_id == event_id, Endpoint.url == url)
        ).one()


def wait_for_status_of(delivery_id: str, wanted: str) -> None:
    """Wait for one of an event's several deliveries to reach ``wanted``."""

    def reached() -> bool:
        with new_session() as session:
            found = session.get(Delivery, delivery_id)
            return found is not None and found.status == wanted

    wait_until(reached, 20, f"delivery {delivery_id} {wanted}")


class TokenServer:
    """An OAuth2 token endpoint issuing tok-1, tok-2... that live :data:`TOKEN_LIFETIME` s."""

    def __init__(self, server: HTTPServer) -> None:
        self.issued: list[float] = []
        self._lock = threading.Lock()
        self.url = server.url_for("/oauth/token")
        server.expect_request("/oauth/token", method="POST").respond_with_handler(self._issue)

    def _issue(self, request: Request) -> Response:
        assert request.form["grant_type"] == "client_credentials"
        with self._lock:
            self.issued.append(time.monotonic())
            number = len(self.issued)
        answer = {"access_token": f"tok-{number}", "token_type": "Bearer",
                  "expires_in": TOKEN_LIFETIME}  # fmt: skip
        return Response(json.dumps(answer), content_type="application/json")


def test_oauth2_one_token_for_fifty_deliveries_then_after_expiry_and_after_a_401(
    api: Api, receiver: HTTPServer, worker: Worker, worker_metrics_port: int
) -> None:
    tokens = TokenServer(receiver)
    got = Recorded(receiver, "/oauth2")
    api.endpoint(
        url=got.url,
        auth={"type": "oauth2", "token_url": tokens.url, "client_id": "dispatcher",
              "client_secret": "e2e-oauth-client-secret", "scope": "webhooks"},
    )  # fmt: skip
    events = [enqueue_event("booking.created", {"n": n}, tenant="acme") for n in range(50)]
    for event_id in events:
        wait_for_status(event_id, "succeeded")
    assert len(tokens.issued) == 1
    assert set(got.authorizations()) == {"Bearer tok-1"}

    # Once the first token is past its usable life, the next delivery fetches another.
    usable_until = tokens.issued[0] + TOKEN_LIFETIME * 0.9
    wait_until(lambda: time.monotonic() > usable_until, TOKEN_LIFETIME, "the token to expire")
    wait_for_status(enqueue_event("booking.created", {}, tenant="acme"), "succeeded")
    assert len(tokens.issued) == 2 and got.authorizations()[-1] == "Bearer tok-2"

    # The receiver revokes tok-2: its 401 makes the worker fetch tok-3 and send once more.
    got.refuse.add("Bearer tok-2")
    revoked = enqueue_event("booking.created", {}, tenant="acme")
    done = wait_for_status(revoked, "succeeded")
    assert len(tokens.issued) == 3
    assert got.authorizations()[-2:] == ["Bearer tok-2", "Bearer tok-3"]
    [attempt] = attempts(done.id)
    assert (attempt.response_status, attempt.request_headers["Authorization"]) == (
        200,
        "[redacted]",
    )
    secrets = ["e2e-oauth-client-secret", *(f"Bearer tok-{n}" for n in (1, 2, 3))]
    assert_nothing_leaks(api, worker, worker_metrics_port, secrets)


def test_a_receiver_requiring_client_certificates_accepts_only_the_endpoint_with_one(
    api: Api, ca: trustme.CA, worker: Worker, worker_metrics_port: int
) -> None:
    certificate = client_certificate(ca, "acme-dispatcher")
    with MutualTLSReceiver(ca) as tls:
        api.endpoint(url=tls.url, client_certificate=certificate, event_types=["mtls.with"])
        api.endpoint(url=tls.url, retry_schedule=[], event_types=["mtls.without"])
        accepted = wait_for_status(enqueue_event("mtls.with", {}, tenant="acme"), "succeeded")
        refused = wait_for_status(enqueue_event("mtls.without", {}, tenant="acme"), "failed")
    assert tls.clients == ["acme-dispatcher"]
    assert attempts(accepted.id)[0].response_status == 200
    [failure] = attempts(refused.id)
    assert failure.response_status is None and failure.error in ("tls", "connection")
    key_lines = certificate["key"].splitlines()[1:-1]
    assert_nothing_leaks(api, worker, worker_metrics_port, key_lines)
