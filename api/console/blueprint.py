"""The console's blueprint, and what every one of its requests goes through.

Before a view: the session cookie is looked up (:mod:`webhooks.admin.console_sessions`), a
request without a live session is sent to the sign-in page, and a POST without the session's
CSRF token is refused (403). After it: a strict Content-Security-Policy (no script at all,
styles and images from this origin only, forms posting only here, framing only by
``WEBHOOKS_CONSOLE_FRAME_ANCESTORS``), no caching, no referrer (a portal link's key is in
its URL).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug import Response
from werkzeug.exceptions import Forbidden, HTTPException

from api import db
from api.errors import status_of
from webhooks.admin import console_sessions
from webhooks.admin.access import Principal, tenant_in_reach
from webhooks.core.config import get_settings
from webhooks.core.errors import WebhooksError
from webhooks.models import ConsoleSession, Tenant

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

SESSION_COOKIE = "webhooks_console"
#: The sign-in form's CSRF token before there is a session (double-submit cookie).
SIGNIN_COOKIE = "webhooks_console_signin"
CSRF_FIELD = "csrf_token"

#: Views reachable without a session.
PUBLIC_VIEWS = frozenset({"console.signin", "console.portal"})


def _cookie_options() -> dict[str, Any]:
    """``HttpOnly``, ``SameSite=Strict``, ``Secure`` unless HTTP is allowed, this path only."""
    return {
        "path": bp.url_prefix,
        "secure": not get_settings().allow_http,
        "httponly": True,
        "samesite": "Strict",
    }


def set_cookie(response: Response, name: str, value: str, lifetime: timedelta) -> None:
    response.set_cookie(name, value, max_age=int(lifetime.total_seconds()), **_cookie_options())


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, **_cookie_options())


def current_session() -> ConsoleSession:
    row: ConsoleSession = g.console_session
    return row


def principal() -> Principal:
    return console_sessions.principal(current_session())


def tenant_for(ref: str, scope: str | None) -> Tenant:
    """The tenant of the path, if this session may act on it in ``scope`` (else a 403 page)."""
    return tenant_in_reach(db.session(), principal(), ref, scope)


@bp.before_request
def _load_session() -> Response | None:
    if request.endpoint == "console.static":
        return None  # the stylesheet: no session needed, no query made
    key = request.cookies.get(SESSION_COOKIE)
    g.console_session = None if not key else console_sessions.current(db.session(), key)
    if request.endpoint in PUBLIC_VIEWS:
        return None
    if g.console_session is None:
        return redirect(url_for("console.signin"), 303)
    if request.method == "POST" and not console_sessions.csrf_matches(
        g.console_session, request.form.get(CSRF_FIELD)
    ):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page and retry")
    return None


@bp.after_request
def _secure(response: Response) -> Response:
    ancestors = get_settings().console_frame_ancestors
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        f" base-uri 'none'; frame-ancestors {ancestors}"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.context_processor
def _context() -> dict[str, Any]:
    row: ConsoleSession | None = g.get("console_session")
    who = None if row is None else console_sessions.principal(row)
    return {
        "principal": who,
        "csrf_token": None if row is None else row.csrf_token,
        "can": (lambda scope: who is not None and who.may(scope)),
    }


def error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("console/error.html", status=status, message=message), status


@bp.errorhandler(WebhooksError)
def _library_error(exc: WebhooksError) -> tuple[str, int]:
    """The API's status for the error, on a page."""
    return error_page(status_of(exc), str(exc))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    return error_page(exc.code or 500, exc.description or "error")
