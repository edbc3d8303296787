"""OAuth2 client credentials: the bearer tokens some receivers want from their own identity
provider, fetched and cached per endpoint.

A token is fetched from the endpoint's ``token_url`` (RFC 6749 §4.4: ``grant_type=
client_credentials``, the client authenticated with HTTP Basic as §2.3.1 asks servers to
support) through the delivery :class:`~webhooks.outbound.http.Transport`, so the token server
is held to the same target policy, TLS verification and total deadline as a receiver.

The cache is per worker process and shared by its greenlets: fifty deliveries to one endpoint
make one token request, not fifty. One fetch at a time per endpoint: the first greenlet to
find no token fetches while the others wait on that endpoint's lock (a ``threading`` lock,
which gevent's monkey-patching turns into a greenlet lock) and then find the fresh token.
A token is used until shortly before it expires (:data:`EXPIRY_MARGIN`), and dropped when the
receiver answers 401 with it, so the next request fetches a new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from webhooks.core.errors import WebhooksError
from webhooks.outbound.http import Transport, default_transport

#: How long before its stated expiry a token stops being used: a tenth of its lifetime, at
#: most this many seconds, so a token is not sent in its very last moments.
EXPIRY_MARGIN = 30.0

#: How long a token is kept when the token server does not say (``expires_in`` is optional).
DEFAULT_LIFETIME = 300.0

#: Most endpoints whose tokens one process keeps; past it the cache starts afresh.
MAX_ENDPOINTS = 10_000


class TokenUnavailable(WebhooksError):
    """The token endpoint failed: unreachable, refused, not 2xx, or no usable token in its
    answer. The message says which, without any credential."""


@dataclass(frozen=True)
class ClientCredentials:
    """An endpoint's ``oauth2`` auth: where and as whom to ask for a token."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None

    @property
    def fingerprint(self) -> str:
        """A digest of every field: an edited configuration gets a token of its own."""
        fields = (self.token_url, self.client_id, self.client_secret, self.scope, self.audience)
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


@dataclass(frozen=True)
class Token:
    value: str
    #: Seconds from the request after which the token is not used any more.
    usable_for: float


@dataclass(frozen=True)
class _Cached:
    value: str
    #: The cache's clock reading after which the token is not used any more.
    good_until: float


def fetch_token(credentials: ClientCredentials, transport: Transport, timeout: float) -> Token:
    """Ask the token server for a token, within ``timeout`` seconds in all.

    :raises TokenUnavailable: whatever went wrong, said without the credentials.
    """
    form = {"grant_type": "client_credentials"}
    if credentials.scope:
        form["scope"] = credentials.scope
    if credentials.audience:
        form["audience"] = credentials.audience
    # RFC 6749 §2.3.1: the id and secret are form-urlencoded before they are joined.
    pair = f"{_quote(credentials.client_id)}:{_quote(credentials.client_secret)}"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii"),
    }
    outcome = transport.post(
        credentials.token_url, headers, urllib.parse.urlencode(form).encode(), timeout
    )
    where = f"the token endpoint {credentials.token_url}"
    if outcome.error is not None:
        raise TokenUnavailable(f"{where} failed: {outcome.error}")
    if not outcome.ok:
        raise TokenUnavailable(f"{where} answered {outcome.status}")
    try:
        answer = json.loads(outcome.body)
    except ValueError:
        raise TokenUnavailable(f"{where} answered with something that is not JSON") from None
    value = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise TokenUnavailable(f"{where} answered without an access_token")
    token_type = answer.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenUnavailable(f"{where} issued a {token_type!r} token, not a bearer token")
    return Token(value, _usable_for(answer.get("expires_in")))


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _usable_for(expires_in: object) -> float:
    """Seconds a token may be used: its lifetime less the margin (never negative)."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        lifetime = DEFAULT_LIFETIME
    else:
        lifetime = float(expires_in)
    return max(lifetime - min(EXPIRY_MARGIN, lifetime / 10), 0.0)


class TokenCache:
    """Tokens by endpoint, for one process; safe for its threads and greenlets."""

    def __init__(
        self, transport: Transport, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._tokens: dict[tuple[str, str], _Cached] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def token(self, owner: str, credentials: ClientCredentials, timeout: float) -> str:
        """A token for endpoint ``owner``: the cached one, or one fetched now.

        :raises TokenUnavailable: no token is cached and the token endpoint failed.
        """
        key = (owner, credentials.fingerprint)
        cached = self._valid(key)
        if cached is not None:
            return cached
        with self._lock(key):
            cached = self._valid(key)  # another greenlet may have fetched it meanwhile
            if cached is not None:
                return cached
            asked_at = self._clock()  # the lifetime runs from the request, not the answer
            fresh = fetch_token(credentials, self._transport, timeout)
            if len(self._tokens) >= MAX_ENDPOINTS:
                self._tokens.clear()
            self._tokens[key] = _Cached(fresh.value, asked_at + fresh.usable_for)
            return fresh.value

    def reject(self, owner: str, credentials: ClientCredentials, value: str) -> None:
        """Forget ``value`` (the receiver answered 401 with it), unless it was replaced."""
        key = (owner, credentials.fingerprint)
        with self._guard:
            cached = self._tokens.get(key)
            if cached is not None and cached.value == value:
                del self._tokens[key]

    def _valid(self, key: tuple[str, str]) -> str | None:
        cached = self._tokens.get(key)
        if cached is None or cached.good_until <= self._clock():
            return None
        return cached.value

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                if len(self._locks) >= MAX_ENDPOINTS:
                    self._locks.clear()
                lock = self._locks[key] = threading.Lock()
            return lock


_per_process: dict[int, TokenCache] = {}


def default_tokens() -> TokenCache:
    """This process's token cache, fetching through its transport.

    Keyed by pid like :func:`~webhooks.outbound.http.default_transport`: a forked child
    starts with no tokens and no locks held by its parent.
    """
    pid = os.getpid()
    cache = _per_process.get(pid)
    if cache is None:
        cache = _per_process[pid] = TokenCache(default_transport())
    return cache
