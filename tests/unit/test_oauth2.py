"""OAuth2 client credentials against a real token server on 127.0.0.1: the request, the
cache (one fetch per endpoint however many callers, a new one after expiry or a rejection)
and every way a token endpoint can fail."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.services import wait_until
from tests.unit.test_transport import LOCAL, PUBLIC_ONLY, UA
from webhooks.outbound import oauth2
from webhooks.outbound.http import Transport
from webhooks.outbound.oauth2 import ClientCredentials, TokenCache, TokenUnavailable

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def transport() -> Iterator[Transport]:
    made = Transport(LOCAL, user_agent=UA)
    yield made
    made.close()


def credentials(server: HTTPServer, **kwargs: str) -> ClientCredentials:
    return ClientCredentials(
        token_url=server.url_for("/token"),
        client_id="dispatcher id",
        client_secret="s3cret:&=",
        **kwargs,
    )


def issue(server: HTTPServer, expires_in: object = 3600, status: int = 200) -> list[Request]:
    """Answer token requests on ``/token`` with tok-1, tok-2... (and ``status``); return the
    requests as they come."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        answer = {"access_token": f"tok-{len(seen)}", "token_type": "Bearer"}
        if expires_in is not None:
            answer["expires_in"] = expires_in
        return Response(json.dumps(answer), status=status, content_type="application/json")

    server.expect_request("/token", method="POST").respond_with_handler(handler)
    return seen


def test_the_request_is_a_client_credentials_grant_with_basic_auth(
    httpserver: HTTPServer, transport: Transport
) -> None:
    seen = issue(httpserver)
    given = credentials(httpserver, scope="hooks:write", audience="https://receiver.example")
    token = oauth2.fetch_token(given, transport, 5)
    assert token.value == "tok-1"
    [request] = seen
    assert urllib.parse.parse_qs(request.get_data(as_text=True)) == {
        "grant_type": ["client_credentials"],
        "scope": ["hooks:write"],
        "audience": ["https://receiver.example"],
    }
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert urllib.parse.unquote(user) == "dispatcher id"
    assert urllib.parse.unquote(password) == "s3cret:&="


def test_one_fetch_serves_every_caller_until_shortly_before_expiry(
    httpserver: HTTPServer, transport: Transport
) -> None:
    seen = issue(httpserver, expires_in=100)
    clock = Clock()
    cache = TokenCache(transport, clock=clock)
    given = credentials(httpserver)
    assert {cache.token("ep_1", given, 5) for _ in range(50)} == {"tok-1"}
    clock.now += 89.9  # the margin: a tenth of the lifetime
    assert cache.token("ep_1", given, 5) == "tok-1"
    clock.now += 0.2
    assert cache.token("ep_1", given, 5) == "tok-2"
    assert len(seen) == 2


def test_tokens_are_per_endpoint_and_per_configuration(
    httpserver: HTTPServer, transport: Transport
) -> None:
    seen = issue(httpserver)
    cache = TokenCache(transport)
    given = credentials(httpserver)
    assert cache.token("ep_1", given, 5) == "tok-1"
    assert cache.token("ep_2", given, 5) == "tok-2"
    assert cache.token("ep_1", credentials(httpserver, scope="other"), 5) == "tok-3"
    assert cache.token("ep_1", given, 5) == "tok-1"
    assert len(seen) == 3


def test_a_rejected_token_is_fetched_again_unless_already_replaced(
    httpserver: HTTPServer, transport: Transport
) -> None:
    issue(httpserver)
    cache = TokenCache(transport)
    given = credentials(httpserver)
    assert cache.token("ep_1", given, 5) == "tok-1"
    cache.reject("ep_1", given, "tok-1")
    assert cache.token("ep_1", given, 5) == "tok-2"
    cache.reject("ep_1", given, "tok-1")  # a late 401 for the old token changes nothing
    assert cache.token("ep_1", given, 5) == "tok-2"


def test_a_missing_expiry_uses_the_default_lifetime(
    httpserver: HTTPServer, transport: Transport
) -> None:
    issue(httpserver, expires_in=None)
    clock = Clock()
    cache = TokenCache(transport, clock=clock)
    given = credentials(httpserver)
    assert cache.token("ep_1", given, 5) == "tok-1"
    clock.now += oauth2.DEFAULT_LIFETIME - oauth2.EXPIRY_MARGIN - 1
    assert cache.token("ep_1", given, 5) == "tok-1"
    clock.now += 2
    assert cache.token("ep_1", given, 5) == "tok-2"


def test_concurrent_callers_wait_for_one_fetch(
    httpserver: HTTPServer, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = issue(httpserver)
    cache = TokenCache(transport)
    given = credentials(httpserver)
    release = threading.Event()
    entered: list[str] = []
    real_fetch, real_lock = oauth2.fetch_token, TokenCache._lock

    def paused_fetch(*args: object) -> oauth2.Token:
        release.wait(10)  # held until every caller is queued on the endpoint's lock
        return real_fetch(*args)  # type: ignore[arg-type]

    def counted_lock(self: TokenCache, key: tuple[str, str]) -> threading.Lock:
        entered.append(key[0])
        return real_lock(self, key)

    monkeypatch.setattr(oauth2, "fetch_token", paused_fetch)
    monkeypatch.setattr(TokenCache, "_lock", counted_lock)
    results: list[str] = []
    callers = [
        threading.Thread(target=lambda: results.append(cache.token("ep_1", given, 5)))
        for _ in range(10)
    ]
    for caller in callers:
        caller.start()
    wait_until(lambda: len(entered) == 10, 10, "every caller to reach the endpoint's lock")
    release.set()
    for caller in callers:
        caller.join(10)
    assert results == ["tok-1"] * 10
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (Response("down", status=503), "answered 503"),
        (Response("<html>", status=200), "not JSON"),
        (Response(json.dumps({"token_type": "bearer"}), status=200), "without an access_token"),
        (Response(json.dumps({"access_token": "t", "token_type": "mac"})), "not a bearer"),
    ],
)
def test_token_endpoint_failures_raise(
    httpserver: HTTPServer, transport: Transport, answer: Response, message: str
) -> None:
    httpserver.expect_request("/token").respond_with_response(answer)
    with pytest.raises(TokenUnavailable, match=message) as failed:
        TokenCache(transport).token("ep_1", credentials(httpserver), 5)
    assert "s3cret" not in str(failed.value)


def test_the_token_url_is_held_to_the_target_policy(httpserver: HTTPServer) -> None:
    issue(httpserver)
    strict = Transport(PUBLIC_ONLY, user_agent=UA)
    with pytest.raises(TokenUnavailable, match="refused_target"):
        TokenCache(strict).token("ep_1", credentials(httpserver), 5)
    assert httpserver.log == []


def test_the_token_request_has_a_total_deadline(
    httpserver: HTTPServer, transport: Transport
) -> None:
    release = threading.Event()

    def hang(_: Request) -> Response:
        release.wait(10)
        return Response("{}")

    httpserver.expect_request("/token").respond_with_handler(hang)
    try:
        with pytest.raises(TokenUnavailable, match="timeout"):
            TokenCache(transport).token("ep_1", credentials(httpserver), 1)
    finally:
        release.set()
