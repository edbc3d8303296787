"""Signing in (a token, or a portal link), signing out, and the tenants an admin sees."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug import Response
from werkzeug.exceptions import Forbidden

from api import db
from api.console.blueprint import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    bp,
    clear_cookie,
    current_session,
    principal,
    set_cookie,
)
from api.console.paging import page_args, paged
from webhooks.admin import console_sessions
from webhooks.admin.access import require_admin
from webhooks.core.errors import Unauthenticated
from webhooks.models import Tenant

#: How long the sign-in form may stay open before it must be reloaded.
SIGNIN_FORM_LIFETIME = timedelta(hours=1)


def _signed_in(opened: console_sessions.OpenedSession, to: str) -> Response:
    response = redirect(to, 303)
    set_cookie(response, SESSION_COOKIE, opened.key, console_sessions.SESSION_LIFETIME)
    clear_cookie(response, SIGNIN_COOKIE)
    return response


def _home_of(opened: console_sessions.OpenedSession) -> str:
    tenant = (
        None if opened.row.tenant_id is None else db.session().get(Tenant, opened.row.tenant_id)
    )
    if tenant is None:
        return url_for("console.tenants")
    return url_for("console.endpoints", tenant=tenant.uid)


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> ResponseReturnValue:
    """A token in, a session cookie out; the form's CSRF token is a double-submit cookie."""
    error = None
    if request.method == "POST":
        expected = request.cookies.get(SIGNIN_COOKIE, "")
        given = request.form.get(CSRF_FIELD, "")
        if not expected or not hmac.compare_digest(expected, given):
            raise Forbidden("the sign-in form's CSRF token is missing or wrong; reload the page")
        try:
            opened = console_sessions.sign_in(db.session(), request.form.get("token", ""))
        except Unauthenticated as exc:
            error = str(exc)
        else:
            db.session().commit()
            return _signed_in(opened, _home_of(opened))
    form_token = secrets.token_urlsafe(32)
    response = make_response(
        render_template("console/signin.html", signin_csrf=form_token, error=error),
        401 if error else 200,
    )
    set_cookie(response, SIGNIN_COOKIE, form_token, SIGNIN_FORM_LIFETIME)
    return response


@bp.route("/portal/<key>", methods=["GET"])
def portal(key: str) -> Response:
    """Redeem a portal link (once) and land on the tenant's endpoints.

    The landing is a page of ours that refreshes to the console rather than a redirect: the
    link is usually followed from another site (a mail, the SaaS's own page), and a browser
    does not send a ``SameSite=Strict`` cookie on a navigation that started elsewhere, even
    after a redirect; a navigation started by our own page is same-site.
    """
    opened = console_sessions.redeem_portal_link(db.session(), key)
    db.session().commit()
    target = _home_of(opened)
    response = make_response(render_template("console/portal.html", target=target))
    set_cookie(response, SESSION_COOKIE, opened.key, console_sessions.SESSION_LIFETIME)
    return response


@bp.route("/signout", methods=["POST"])
def signout() -> Response:
    console_sessions.sign_out(current_session())
    db.session().commit()
    response = redirect(url_for("console.signin"), 303)
    clear_cookie(response, SESSION_COOKIE)
    return response


@bp.route("/", methods=["GET"])
def home() -> Response:
    who = principal()
    if who.is_admin:
        return redirect(url_for("console.tenants"), 303)
    tenant = db.session().get(Tenant, who.tenant_id)
    assert tenant is not None  # a tenant's sessions are deleted with it
    return redirect(url_for("console.endpoints", tenant=tenant.uid), 303)


@bp.route("/tenants", methods=["GET"])
def tenants() -> str:
    require_admin(principal())
    page = paged(select(Tenant), Tenant.id, page_args())
    return render_template("console/tenants.html", page=page)
