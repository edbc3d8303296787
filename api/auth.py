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
from werkzeug.exceptions import Unauthorized

from api import db
from webhooks.admin import tokens
from webhooks.admin.access import ADMIN, Principal, require_admin, tenant_in_reach
from webhooks.models import ApiToken

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["ADMIN", "admin_only", "authenticate", "current_token", "tenant_access"]

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


def tenant_access(scope: str | None) -> Callable[[F], F]:
    """Authorize a view under ``/v1/tenants/<tenant>`` and hand it the :class:`Tenant`.

    ``scope`` is the scope a tenant token needs, :data:`ADMIN` for admin tokens only, or None
    for any token of the tenant.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, tenant: str, **kwargs: Any) -> Any:
            principal = Principal.of_token(current_token())
            found = tenant_in_reach(db.session(), principal, tenant, scope)
            return view(*args, tenant=found, **kwargs)

        return cast(F, wrapper)

    return decorator


def admin_only(view: F) -> F:
    """Authorize a view that only admin tokens may call."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_admin(Principal.of_token(current_token()))
        return view(*args, **kwargs)

    return cast(F, wrapper)
