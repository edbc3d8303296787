"""How the dispatcher authenticates to a receiver, besides signing: an endpoint's ``auth``.

``{"type": "basic", "username", "password"}``, ``{"type": "bearer", "token"}`` or
``{"type": "oauth2", "token_url", "client_id", "client_secret", "scope"?, "audience"?}``
(client credentials, :mod:`webhooks.outbound.oauth2`). Each becomes one ``Authorization``
header. The credentials are stored encrypted, redacted from the history and never shown:
:func:`public_view` is what the API returns.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from webhooks.core.errors import InvalidInput
from webhooks.outbound.oauth2 import ClientCredentials, TokenCache

BASIC = "basic"
BEARER = "bearer"
OAUTH2 = "oauth2"
TYPES = (BASIC, BEARER, OAUTH2)

#: Per type: the fields it needs and the optional ones; then the fields that are secret.
_REQUIRED = {
    BASIC: ("username", "password"),
    BEARER: ("token",),
    OAUTH2: ("token_url", "client_id", "client_secret"),
}
_OPTIONAL = {BASIC: (), BEARER: (), OAUTH2: ("scope", "audience")}
SECRET_FIELDS = frozenset({"password", "token", "client_secret"})

MAX_FIELD = 4096


def validate(auth: Mapping[str, Any]) -> dict[str, Any]:
    """The ``auth`` object to store, every field a non-empty string without line breaks.

    An OAuth2 ``token_url`` is checked by the caller as endpoint URLs are checked (the target
    policy), since that needs the policy and resolves the host.
    """
    kind = auth.get("type")
    if kind not in _REQUIRED:
        raise InvalidInput(f"auth.type must be one of {', '.join(_REQUIRED)}", field="auth.type")
    allowed = {"type", *_REQUIRED[kind], *_OPTIONAL[kind]}
    for name in auth:
        if name not in allowed:
            raise InvalidInput(f"{kind} auth has no field {name}", field=f"auth.{name}")
    stored: dict[str, Any] = {"type": kind}
    for name in (*_REQUIRED[kind], *_OPTIONAL[kind]):
        value = auth.get(name)
        if value is None and name in _OPTIONAL[kind]:
            continue
        stored[name] = _text(value, f"auth.{name}")
    if kind == BASIC and ":" in stored["username"]:
        raise InvalidInput("a Basic auth username cannot contain ':'", field="auth.username")
    if kind == BEARER and not stored["token"].isascii():
        # Sent as is in a header (Basic credentials are base64, so any text will do there).
        raise InvalidInput("a bearer token must be ASCII", field="auth.token")
    return stored


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} is required (a non-empty string)", field=field)
    if len(value) > MAX_FIELD or not value.isprintable():
        raise InvalidInput(
            f"{field} must be at most {MAX_FIELD} printable characters, without line breaks",
            field=field,
        )
    return value


def public_view(auth: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``auth`` without its password, token or client secret: what responses may show."""
    if auth is None:
        return None
    return {name: value for name, value in auth.items() if name not in SECRET_FIELDS}


def client_credentials(auth: Mapping[str, Any] | None) -> ClientCredentials | None:
    """The OAuth2 client of an ``oauth2`` auth; None for any other."""
    if auth is None or auth["type"] != OAUTH2:
        return None
    return ClientCredentials(
        token_url=auth["token_url"],
        client_id=auth["client_id"],
        client_secret=auth["client_secret"],
        scope=auth.get("scope"),
        audience=auth.get("audience"),
    )


def static_authorization(auth: Mapping[str, Any] | None) -> str | None:
    """The ``Authorization`` value of a ``basic`` or ``bearer`` auth; None otherwise."""
    if auth is None:
        return None
    if auth["type"] == BASIC:
        pair = f"{auth['username']}:{auth['password']}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    if auth["type"] == BEARER:
        return bearer(auth["token"])
    return None


_BEARER = "Bearer "


def bearer(token: str) -> str:
    """The ``Authorization`` value carrying ``token``."""
    return _BEARER + token


def bearer_token(authorization: str) -> str:
    """The token of a :func:`bearer` value."""
    return authorization.removeprefix(_BEARER)


def authorization(
    owner: str, auth: Mapping[str, Any] | None, tokens: TokenCache, timeout: float
) -> str | None:
    """The ``Authorization`` value for a request to endpoint ``owner``, if it has ``auth``.

    :raises ~webhooks.outbound.oauth2.TokenUnavailable: an OAuth2 token could not be had.
    """
    credentials = client_credentials(auth)
    if credentials is None:
        return static_authorization(auth)
    return bearer(tokens.token(owner, credentials, timeout))
