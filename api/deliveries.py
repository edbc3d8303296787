"""``/v1/tenants/{tenant}/deliveries``: the execution history of a tenant's events.

Deliveries filtered by endpoint, event, state and creation time, one delivery with its
attempts, and redelivery. The queries are :mod:`webhooks.history.queries`; redelivery is
:mod:`webhooks.delivery.redelivery`, where its rules are written down.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import Select

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.fields import Text, anchored
from api.pagination import PageArgs, page_of, paginate
from api.schemas import AttemptSchema, DeliverySchema
from api.windows import WindowArgs, window
from webhooks.core.ids import ID_PATTERN
from webhooks.delivery.redelivery import redeliver
from webhooks.history import queries
from webhooks.models import Attempt, Delivery, DeliveryStatus, Tenant

blp = Blueprint(
    "deliveries",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/deliveries",
    description="Deliveries: one event on its way to one endpoint, with its attempts.",
)


def _object_id(description: str) -> fields.String:
    return fields.String(
        validate=validate.Regexp(ID_PATTERN),
        metadata={"description": description, "pattern": anchored(ID_PATTERN)},
    )


#: One schema for both lists of attempts (the OpenAPI document names it ``AttemptPage``).
AttemptPageSchema = page_of(AttemptSchema)


class DeliveryListArgs(WindowArgs):
    endpoint_id = _object_id("Only deliveries to this endpoint")
    event_id = _object_id("Only deliveries of this event")
    status = fields.String(validate=validate.OneOf([status.value for status in DeliveryStatus]))
    event_type = Text(metadata={"description": "Only deliveries of events of this type"})


def deliveries_matching(tenant_id: str, args: dict[str, Any]) -> Select[Delivery]:
    """The tenant's deliveries that loaded :class:`DeliveryListArgs` select."""
    return queries.deliveries_query(
        tenant_id,
        endpoint_id=args.get("endpoint_id"),
        event_id=args.get("event_id"),
        status=args.get("status"),
        event_type=args.get("event_type"),
        window=window(args),
    )


@blp.route("")
class Deliveries(MethodView):
    @tenant_access("events:read")
    @blp.arguments(DeliveryListArgs, location="query")
    @blp.response(200, page_of(DeliverySchema))
    def get(self, args: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
        """List deliveries, newest first; the filters combine (the window is on creation)."""
        return paginate(deliveries_matching(tenant.id, args), Delivery.id, args)


@blp.route("/<id:delivery_id>")
class DeliveryItem(MethodView):
    @tenant_access("events:read")
    @blp.response(200, DeliverySchema)
    def get(self, tenant: Tenant, delivery_id: str) -> Delivery:
        """Read one delivery."""
        return queries.get_delivery(db.session(), tenant.id, delivery_id)


@blp.route("/<id:delivery_id>/attempts", methods=["GET"])
@tenant_access("events:read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, AttemptPageSchema)
def delivery_attempts(args: dict[str, Any], tenant: Tenant, delivery_id: str) -> dict[str, Any]:
    """A delivery's attempts, newest first, with request and response."""
    delivery = queries.get_delivery(db.session(), tenant.id, delivery_id)
    return paginate(queries.delivery_attempts_query(delivery.id), Attempt.id, args)


@blp.route("/<id:delivery_id>/redeliver", methods=["POST"])
@tenant_access("events:write")
@blp.response(202, DeliverySchema)
def redeliver_one(tenant: Tenant, delivery_id: str) -> Delivery:
    """Queue a delivery again, whatever its state (202 with it, now pending).

    Its attempts so far are kept and the next one is numbered on from them (attempt 4 after
    three); a delivery that had used up its retry schedule gets one more attempt.
    """
    delivery = queries.get_delivery(db.session(), tenant.id, delivery_id)
    redeliver(db.session(), delivery)
    db.session().commit()
    return delivery
