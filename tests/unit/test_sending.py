"""One call to a receiver with the endpoint's ``auth``: Basic and Bearer as sent, an OAuth2
token fetched once, fetched again once after a 401, and error ``auth`` when the token server
fails (the receiver then never called). Real servers on 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.unit.test_oauth2 import issue
from tests.unit.test_transport import LOCAL, UA
from webhooks.history.recording import request_headers
from webhooks.models import Endpoint
from webhooks.outbound import sending
from webhooks.outbound.http import Transport
from webhooks.outbound.oauth2 import TokenCache
from webhooks.outbound.request import envelope

pytestmark = pytest.mark.timeout(30)

AT = datetime.now(UTC)
BODY = envelope("evt_1", "booking.created", AT, {"n": 1})


@pytest.fixture
def transport() -> Iterator[Transport]:
    made = Transport(LOCAL, user_agent=UA)
    yield made
    made.close()


def endpoint(url: str, auth: dict[str, Any] | None) -> Endpoint:
    return Endpoint(
        id="ep_1",
        tenant_id="ten_1",
        url=url,
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        signing="hmac",
        headers={},
        content_type="application/json",
        timeout_seconds=5,
        auth=auth,
    )


class Receiver:
    """Records each request's Authorization; answers 401 to the tokens in ``refuse``."""

    def __init__(self, server: HTTPServer, refuse: Collection[str] = ()) -> None:
        self.authorizations: list[str | None] = []
        self.refuse = refuse
        self.url = server.url_for("/hook")
        server.expect_request("/hook", method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        value = request.headers.get("Authorization")
        self.authorizations.append(value)
        return Response("", status=401 if value in self.refuse else 204)


def oauth2(server: HTTPServer) -> dict[str, Any]:
    return {
        "type": "oauth2",
        "token_url": server.url_for("/token"),
        "client_id": "dispatcher",
        "client_secret": "client-secret-value",
    }


def test_basic_and_bearer_arrive_as_sent(httpserver: HTTPServer, transport: Transport) -> None:
    got = Receiver(httpserver)
    basic = endpoint(got.url, {"type": "basic", "username": "hooks", "password": "pa:ss wörd"})
    request, outcome = sending.send(basic, BODY, transport, at=AT, tokens=TokenCache(transport))
    assert outcome.ok
    bearer = endpoint(got.url, {"type": "bearer", "token": "static-token"})
    assert sending.send(bearer, BODY, transport, at=AT, tokens=TokenCache(transport))[1].ok
    expected = "Basic " + base64.b64encode("hooks:pa:ss wörd".encode()).decode()
    assert got.authorizations == [expected, "Bearer static-token"]
    assert request_headers(request, basic)["Authorization"] == "[redacted]"


def test_no_auth_sends_no_authorization(httpserver: HTTPServer, transport: Transport) -> None:
    got = Receiver(httpserver)
    assert sending.send(endpoint(got.url, None), BODY, transport, at=AT)[1].ok
    assert got.authorizations == [None]


def test_oauth2_token_is_cached_and_fetched_again_once_after_a_401(
    httpserver: HTTPServer, transport: Transport
) -> None:
    tokens = issue(httpserver)
    got = Receiver(httpserver, refuse={"Bearer tok-1"})
    cache = TokenCache(transport)
    ep = endpoint(got.url, oauth2(httpserver))
    request, outcome = sending.send(ep, BODY, transport, at=AT, tokens=cache)
    assert outcome.ok and request.headers["Authorization"] == "Bearer tok-2"
    assert got.authorizations == ["Bearer tok-1", "Bearer tok-2"]
    for _ in range(5):
        assert sending.send(ep, BODY, transport, at=AT, tokens=cache)[1].ok
    assert len(tokens) == 2


def test_a_second_401_fails_the_attempt_without_a_third_token(
    httpserver: HTTPServer, transport: Transport
) -> None:
    tokens = issue(httpserver)
    got = Receiver(httpserver, refuse={"Bearer tok-1", "Bearer tok-2", "Bearer tok-3"})
    ep = endpoint(got.url, oauth2(httpserver))
    _, outcome = sending.send(ep, BODY, transport, at=AT, tokens=TokenCache(transport))
    assert (outcome.status, outcome.error) == (401, None)
    assert len(tokens) == 2 and len(got.authorizations) == 2


def test_a_401_with_static_auth_is_not_retried(
    httpserver: HTTPServer, transport: Transport
) -> None:
    got = Receiver(httpserver, refuse={"Bearer static-token"})
    ep = endpoint(got.url, {"type": "bearer", "token": "static-token"})
    assert sending.send(ep, BODY, transport, at=AT)[1].status == 401
    assert len(got.authorizations) == 1


def test_a_failing_token_endpoint_is_error_auth_and_the_receiver_is_not_called(
    httpserver: HTTPServer, transport: Transport
) -> None:
    issue(httpserver, status=500)
    got = Receiver(httpserver)
    ep = endpoint(got.url, oauth2(httpserver))
    request, outcome = sending.send(ep, BODY, transport, at=AT, tokens=TokenCache(transport))
    assert (outcome.status, outcome.error, outcome.ok) == (None, "auth", False)
    assert "Authorization" not in request.headers
    assert got.authorizations == []
