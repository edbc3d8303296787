"""Endpoint pages: the list with health, one endpoint with charts and run history, the form,
and the actions (reveal and rotate the secret, ping, pause and enable, recover, delete).

Each view calls what the matching ``/v1`` view calls (:mod:`webhooks.admin.endpoints`,
:mod:`webhooks.outbound.ping`, :mod:`webhooks.delivery.redelivery`, :mod:`webhooks.history`)
with the scope the API asks for, and answers with a page or a redirect to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, ValidationError

from api import db
from api.console.blueprint import bp, principal, tenant_for
from api.console.charts import charts
from api.console.forms import ENDPOINT_FIELDS, add_error, parse, utc_time
from api.console.paging import page_args, paged
from api.endpoints import EndpointCreateSchema, EndpointPatchSchema
from api.endpoints.attempts import RunHistoryArgs
from api.endpoints.recovery import RecoverSchema
from api.errors import flatten
from webhooks.admin import endpoints as rules
from webhooks.core.clock import now
from webhooks.core.errors import InvalidInput
from webhooks.delivery.redelivery import start_recovery
from webhooks.history.queries import Window, endpoint_attempts_query
from webhooks.history.series import SPANS, stats_and_series
from webhooks.history.stats import attempt_summaries, newest_attempts
from webhooks.models import Attempt, Endpoint, Tenant
from webhooks.outbound.http import default_transport
from webhooks.outbound.ping import record_ping, send_ping

#: The window of the health shown in the list.
LIST_HEALTH_WINDOW = timedelta(hours=24)

#: What a redirect's ``?done=`` says happened.
NOTICES = {
    "created": "Endpoint created.",
    "saved": "Endpoint saved.",
    "rotated": "Secret rotated: the previous one keeps signing beside it for 24 hours.",
    "paused": "Endpoint paused: its deliveries wait until it is enabled.",
    "enabled": "Endpoint enabled: waiting deliveries go out now.",
    "recovering": "Recovery started.",
}


def _endpoint(tenant: Tenant, endpoint_id: str) -> Endpoint:
    return rules.get_endpoint(db.session(), tenant.id, endpoint_id)


def _to_endpoint(tenant: Tenant, endpoint: Endpoint, **query: Any) -> ResponseReturnValue:
    target = url_for("console.endpoint", tenant=tenant.uid, endpoint_id=endpoint.id, **query)
    return redirect(target, 303)


@bp.route("/t/<tenant:tenant>/endpoints", methods=["GET"])
def endpoints(tenant: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:read")
    page = paged(rules.endpoints_query(found.id), Endpoint.id, page_args())
    ids = [endpoint.id for endpoint in page.items]
    window = Window(now() - LIST_HEALTH_WINDOW, None)
    return render_template(
        "console/endpoints.html",
        tenant=found,
        page=page,
        health=attempt_summaries(db.session(), ids, window),
        newest=newest_attempts(db.session(), ids),
    )


def _endpoint_page(
    tenant: Tenant, endpoint: Endpoint, *, secret: str | None = None
) -> ResponseReturnValue:
    span = request.args.get("span", "24h")
    span = span if span in SPANS else "24h"
    until = now()
    stats, series = stats_and_series(db.session(), endpoint, span, until=until)
    history = None
    if principal().may("events:read"):
        args = page_args(RunHistoryArgs)
        history = paged(endpoint_attempts_query(endpoint.id), Attempt.id, args)
    ping = None
    if request.args.get("ping"):
        query = endpoint_attempts_query(endpoint.id).where(Attempt.id == request.args["ping"])
        ping = db.session().scalar(query)
    return render_template(
        "console/endpoint.html",
        tenant=tenant,
        endpoint=endpoint,
        stats=stats,
        span=span,
        spans=list(SPANS),
        charts=charts(series, until),
        history=history,
        ping=ping,
        secret=secret,
        notice=NOTICES.get(request.args.get("done", "")),
        recovered=request.args.get("count"),
    )


@bp.route("/t/<tenant:tenant>/endpoints/<id:endpoint_id>", methods=["GET"])
def endpoint(tenant: str, endpoint_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:read")
    return _endpoint_page(found, _endpoint(found, endpoint_id))


def _form_page(
    tenant: Tenant,
    values: Mapping[str, Any],
    errors: Mapping[str, list[str]],
    endpoint: Endpoint | None = None,
) -> ResponseReturnValue:
    page = render_template(
        "console/endpoint_form.html",
        tenant=tenant,
        endpoint=endpoint,
        fields=ENDPOINT_FIELDS,
        values=values,
        errors=errors,
        verify=request.method == "GET" or "verify" in request.form,
    )
    return page, 422 if errors else 200


def _posted_values() -> dict[str, Any]:
    """What the form showed when it was posted, to show it again with the errors."""
    return {field.name: field.posted(request.form) for field in ENDPOINT_FIELDS}


def _save(
    tenant: Tenant, schema: Schema, endpoint: Endpoint | None
) -> tuple[Endpoint | None, dict[str, list[str]]]:
    """Create or change the endpoint from the posted form, or say what is wrong, by field."""
    values, errors = parse(ENDPOINT_FIELDS, request.form, schema)
    if errors:
        return None, errors
    values.pop("verify", None)
    verify = "verify" in request.form
    try:
        if endpoint is None:
            endpoint = rules.create_endpoint(
                db.session(), tenant.id, values, transport=default_transport(), verify=verify
            )
        else:
            rules.update_endpoint(
                db.session(), endpoint, values, transport=default_transport(), verify=verify
            )
    except InvalidInput as exc:
        db.session().rollback()
        add_error(errors, exc)
        return None, errors
    db.session().commit()
    return endpoint, {}


@bp.route("/t/<tenant:tenant>/endpoints/new", methods=["GET", "POST"])
def new_endpoint(tenant: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:write")
    if request.method == "GET":
        defaults = {
            field.name: field.show(rules.DEFAULTS.get(field.name)) for field in ENDPOINT_FIELDS
        }
        return _form_page(found, defaults, {})
    created, errors = _save(found, EndpointCreateSchema(), None)
    if created is None:
        return _form_page(found, _posted_values(), errors)
    return _to_endpoint(found, created, done="created")


@bp.route("/t/<tenant:tenant>/endpoints/<id:endpoint_id>/edit", methods=["GET", "POST"])
def edit_endpoint(tenant: str, endpoint_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:write")
    current = _endpoint(found, endpoint_id)
    if request.method == "GET":
        shown = {field.name: field.show(getattr(current, field.name)) for field in ENDPOINT_FIELDS}
        return _form_page(found, shown, {}, current)
    saved, errors = _save(found, EndpointPatchSchema(), current)
    if saved is None:
        return _form_page(found, _posted_values(), errors, _endpoint(found, endpoint_id))
    return _to_endpoint(found, saved, done="saved")


@bp.route("/t/<tenant:tenant>/endpoints/<id:endpoint_id>/secret", methods=["POST"])
def reveal_secret(tenant: str, endpoint_id: str) -> ResponseReturnValue:
    """The one page that shows the secret: asked for with a POST, never cached."""
    found = tenant_for(tenant, "endpoints:write")
    current = _endpoint(found, endpoint_id)
    return _endpoint_page(found, current, secret=current.secret)


@bp.route("/t/<tenant:tenant>/endpoints/<id:endpoint_id>/rotate-secret", methods=["POST"])
def rotate_secret(tenant: str, endpoint_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:write")
    current = _endpoint(found, endpoint_id)
    rules.rotate_secret(current, None, at=now())
    db.session().commit()
    return _to_endpoint(found, current, done="rotated")


@bp.route("/t/<tenant:tenant>/endpoints/<id:endpoint_id>/ping", methods=["POST"])
def ping(tenant: str, endpoint_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:write")
    current = _endpoint(found, endpoint_id)
    at = now()
    sent, outcome = send_ping(current, default_transport(), at=at)
    attempt = record_ping(db.session(), current, sent, outcome, at=at)
    db.session().commit()
    return _to_endpoint(found, current, ping=attempt.id)


@bp.route("/t/<tenant:tenant>/endpoints/<id:endpoint_id>/enabled", methods=["POST"])
def set_enabled(tenant: str, endpoint_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:write")
    current = _endpoint(found, endpoint_id)
    enabled = request.form.get("enabled") == "1"
    rules.update_endpoint(
        db.session(), current, {"enabled": enabled}, transport=default_transport()
    )
    db.session().commit()
    return _to_endpoint(found, current, done="enabled" if enabled else "paused")


@bp.route("/t/<tenant:tenant>/endpoints/<id:endpoint_id>/recover", methods=["POST"])
def recover(tenant: str, endpoint_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "events:write")
    current = _endpoint(found, endpoint_id)
    try:
        window = RecoverSchema().load({"since": utc_time(request.form.get("since", ""))})
    except ValidationError as exc:
        detail = " ".join(str(error["message"]) for error in flatten(exc.messages))
        raise InvalidInput(f"since: {detail}", field="since") from None
    count = start_recovery(db.session(), current, window["since"])
    return _to_endpoint(found, current, done="recovering", count=str(count))


@bp.route("/t/<tenant:tenant>/endpoints/<id:endpoint_id>/delete", methods=["POST"])
def delete_endpoint(tenant: str, endpoint_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:write")
    db.session().delete(_endpoint(found, endpoint_id))
    db.session().commit()
    return redirect(url_for("console.endpoints", tenant=found.uid), 303)
