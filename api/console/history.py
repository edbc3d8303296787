"""Event types, events (with the send-test-event form), deliveries and one delivery's attempts.

The lists take the API's own query arguments (the same schemas load them) and run the same
:mod:`webhooks.history.queries`, keyset-paged on the same indexes.
"""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from api import db
from api.console.blueprint import bp, tenant_for
from api.console.forms import add_error
from api.console.paging import page_args, paged
from api.deliveries import DeliveryListArgs, deliveries_matching
from api.errors import flatten
from api.events import EventCreateSchema, EventListArgs
from webhooks.admin import endpoints as rules
from webhooks.core.errors import InvalidInput
from webhooks.delivery.redelivery import redeliver
from webhooks.history import queries
from webhooks.ingest.enqueue import ingest
from webhooks.ingest.event_types import event_types_query
from webhooks.models import (
    OPEN_STATUSES,
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    EventType,
    Tenant,
)

#: Seconds between reloads of a page that shows a delivery still on its way.
REFRESH_SECONDS = 2


@bp.route("/t/<tenant:tenant>/event-types", methods=["GET"])
def event_types(tenant: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "endpoints:read")
    page = paged(event_types_query(found.id), EventType.id, page_args())
    return render_template("console/event_types.html", tenant=found, page=page)


def _events_page(
    tenant: Tenant, form: dict[str, str], errors: dict[str, list[str]]
) -> ResponseReturnValue:
    args = page_args(EventListArgs)
    page = paged(queries.events_query(tenant.id, event_type=args.get("type")), Event.id, args)
    deliveries = queries.deliveries_of_events(db.session(), [event.id for event in page.items])
    html = render_template(
        "console/events.html",
        tenant=tenant,
        page=page,
        deliveries=deliveries,
        form=form,
        errors=errors,
    )
    return html, 422 if errors else 200


def _test_event(tenant: Tenant) -> tuple[str | None, dict[str, list[str]]]:
    """Send the posted test event; its id, or the errors by field."""
    errors: dict[str, list[str]] = {}
    try:
        data = json.loads(request.form.get("data", "") or "{}")
    except ValueError as exc:
        add_error(errors, InvalidInput(f"not valid JSON: {exc}", field="data"))
        return None, errors
    try:
        body = EventCreateSchema().load({"type": request.form.get("type", ""), "data": data})
    except ValidationError as exc:
        for error in flatten(exc.messages):
            add_error(errors, InvalidInput(str(error["message"]), field=error["field"]))
        return None, errors
    try:
        result = ingest(db.session(), tenant=tenant, event_type=body["type"], data=body["data"])
    except InvalidInput as exc:
        db.session().rollback()
        add_error(errors, exc)
        return None, errors
    db.session().commit()
    return result.event.id, {}


@bp.route("/t/<tenant:tenant>/events", methods=["GET", "POST"])
def events(tenant: str) -> ResponseReturnValue:
    if request.method == "GET":
        return _events_page(tenant_for(tenant, "events:read"), {}, {})
    found = tenant_for(tenant, "events:write")
    event_id, errors = _test_event(found)
    if event_id is None:
        return _events_page(found, dict(request.form), errors)
    return redirect(url_for("console.deliveries", tenant=found.uid, event_id=event_id), 303)


def _still_open(deliveries: list[Delivery]) -> bool:
    return any(delivery.status in OPEN_STATUSES for delivery in deliveries)


@bp.route("/t/<tenant:tenant>/deliveries", methods=["GET"])
def deliveries(tenant: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "events:read")
    args = page_args(DeliveryListArgs, times=("since", "until"))
    page = paged(deliveries_matching(found.id, args), Delivery.id, args)
    return render_template(
        "console/deliveries.html",
        tenant=found,
        page=page,
        filters=request.args,
        statuses=[status.value for status in DeliveryStatus],
        refresh=REFRESH_SECONDS if _still_open(page.items) else None,
    )


@bp.route("/t/<tenant:tenant>/deliveries/<id:delivery_id>", methods=["GET"])
def delivery(tenant: str, delivery_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "events:read")
    current = queries.get_delivery(db.session(), found.id, delivery_id)
    attempts = paged(queries.delivery_attempts_query(current.id), Attempt.id, page_args())
    context: dict[str, Any] = {
        "tenant": found,
        "delivery": current,
        "event": queries.get_event(db.session(), found.id, current.event_id),
        "endpoint": rules.get_endpoint(db.session(), found.id, current.endpoint_id),
        "attempts": attempts,
        "redelivered": request.args.get("done") == "redelivered",
        "refresh": REFRESH_SECONDS if _still_open([current]) else None,
    }
    return render_template("console/delivery.html", **context)


@bp.route("/t/<tenant:tenant>/deliveries/<id:delivery_id>/redeliver", methods=["POST"])
def redeliver_delivery(tenant: str, delivery_id: str) -> ResponseReturnValue:
    found = tenant_for(tenant, "events:write")
    current = queries.get_delivery(db.session(), found.id, delivery_id)
    redeliver(db.session(), current)
    db.session().commit()
    target = url_for(
        "console.delivery", tenant=found.uid, delivery_id=current.id, done="redelivered"
    )
    return redirect(target, 303)
