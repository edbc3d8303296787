"""Who may call what: bearer tokens, admin or bound to one tenant with scopes.

Every ``/v1`` request is authenticated before anything else (401 otherwise). Authorization is
a decorator on each view, outermost, so that it runs before the body is parsed: a token that
may not call a route learns nothing from its validation errors. A tenant token reaching for
another tenant's path gets 403; another tenant's objects are simply not found (404), because
every lookup is filtered by the tenant the path names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import g, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from api import db
from webhooks.admin import tokens
from webhooks.admin.tenants import get_tenant
from webhooks.models import ApiToken, Tenant

F = TypeVar("F", bound=Callable[..., Any])

#: The "scope" of routes only admin tokens may call.
ADMIN = "admin"

SECURITY_SCHEME = {"type": "http", "scheme": "bearer", "description": "An API token."}


def _unauthorized(detail: str, error: str | None = None) -> Unauthorized:
    challenge = WWWAuthenticate("Bearer", {"error": error} if error else None)
    return Unauthorized(detail, www_authenticate=challenge)


def authenticate() -> None:
    """``before_request``: find the live token of every request to a ``/v1`` route."""
    if request.url_rule is None or not request.path.startswith("/v1/"):
        return  # not a protected route: a 404, a 405, the docs or a probe
    scheme, _, plaintext = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not plaintext.strip():
        raise _unauthorized("an 'Authorization: Bearer <token>' header is required")
    token = tokens.authenticate(db.session(), plaintext.strip())
    if token is None:
        raise _unauthorized("the token is invalid or revoked", error="invalid_token")
    g.api_token = token


def current_token() -> ApiToken:
    token: ApiToken = g.api_token
    return token


def _require_admin(token: ApiToken) -> None:
    if not token.is_admin:
        raise Forbidden("this route needs an admin token")


def _tenant(ref: str, scope: str | None) -> Tenant:
    """The tenant ``ref`` (id or uid) names, if the current token may act on it in ``scope``."""
    token = current_token()
    if scope == ADMIN:
        _require_admin(token)
    if token.is_admin:
        return get_tenant(db.session(), ref)
    own = db.session().get(Tenant, token.tenant_id)
    if own is None or ref not in (own.id, own.uid):
        raise Forbidden("this token is bound to another tenant")
    if scope is not None and scope not in token.scopes:
        raise Forbidden(f"this token lacks the {scope} scope")
    return own


def tenant_access(scope: str | None) -> Callable[[F], F]:
    """Authorize a view under ``/v1/tenants/<tenant>`` and hand it the :class:`Tenant`.

    ``scope`` is the scope a tenant token needs, :data:`ADMIN` for admin tokens only, or None
    for any token of the tenant.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, tenant: str, **kwargs: Any) -> Any:
            return view(*args, tenant=_tenant(tenant, scope), **kwargs)

        return cast(F, wrapper)

    return decorator


def admin_only(view: F) -> F:
    """Authorize a view that only admin tokens may call."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _require_admin(current_token())
        return view(*args, **kwargs)

    return cast(F, wrapper)
