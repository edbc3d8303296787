"""``/v1/tenants/{tenant}/events``: send events, and read them back with their deliveries.

Sending is :func:`webhooks.ingest.enqueue.ingest`, the same code path as the producer library's
``enqueue_event``: the event and one delivery per matching endpoint are committed together,
and the delivery tasks are published after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.fields import JSON, Text, Timestamp, anchored
from api.pagination import PageArgs, page_of, paginate
from api.schemas import DeliverySchema
from webhooks.core.errors import InvalidInput
from webhooks.history import queries
from webhooks.ingest.enqueue import ingest
from webhooks.ingest.event_names import MAX_LENGTH as MAX_NAME_LENGTH
from webhooks.ingest.event_names import NAME_PATTERN
from webhooks.models import Delivery, Event, Tenant

blp = Blueprint(
    "events",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/events",
    description="Events: what a producer sent, with its deliveries.",
)

_KEY = validate.Length(min=1, max=200)
_KEY_DOC = "The same key for the same tenant returns the first event and creates nothing"


class EventCreateSchema(Schema):
    type = Text(
        required=True,
        validate=validate.Length(max=MAX_NAME_LENGTH),
        metadata={"description": "e.g. booking.created", "pattern": anchored(NAME_PATTERN)},
    )
    data = JSON(object_only=True, required=True)
    idempotency_key = Text(allow_none=True, validate=_KEY, metadata={"description": _KEY_DOC})
    timestamp = Timestamp(
        allow_none=True, metadata={"description": "When it happened; default: now"}
    )


class IdempotencyHeaderSchema(Schema):
    idempotency_key = Text(data_key="Idempotency-Key", validate=_KEY)


class EventAcceptedSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    deliveries = fields.Integer(
        required=True, metadata={"description": "Deliveries created (one per matching endpoint)"}
    )


class EventSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    timestamp = Timestamp(required=True)
    data = fields.Dict(required=True)
    idempotency_key = fields.String(required=True, allow_none=True)
    created_at = Timestamp(required=True)
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)


class EventListArgs(PageArgs):
    type = Text(metadata={"description": "Only events of this type"})


@dataclass(frozen=True)
class EventWithDeliveries:
    """An event row as :class:`EventSchema` reads it: its columns plus its deliveries."""

    event: Event
    deliveries: list[Delivery]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.event, name)


def _with_deliveries(events: Sequence[Event]) -> list[EventWithDeliveries]:
    """Attach the deliveries of all ``events`` with one query."""
    by_event = queries.deliveries_of_events(db.session(), [event.id for event in events])
    return [EventWithDeliveries(event, by_event[event.id]) for event in events]


def _idempotency_key(body: dict[str, Any], header: dict[str, Any]) -> str | None:
    """The key from the body or the ``Idempotency-Key`` header; both must agree if both given."""
    in_body, in_header = body.get("idempotency_key"), header.get("idempotency_key")
    if in_body is not None and in_header is not None and in_body != in_header:
        raise InvalidInput(
            "idempotency_key and the Idempotency-Key header differ", field="idempotency_key"
        )
    key: str | None = in_body if in_body is not None else in_header
    return key


@blp.route("")
class Events(MethodView):
    @tenant_access("events:read")
    @blp.arguments(EventListArgs, location="query")
    @blp.response(200, page_of(EventSchema))
    def get(self, args: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
        """List the tenant's events with their deliveries, newest first."""
        query = queries.events_query(tenant.id, event_type=args.get("type"))
        page = paginate(query, Event.id, args)
        page["data"] = _with_deliveries(page["data"])
        return page

    @tenant_access("events:write")
    @blp.arguments(EventCreateSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, EventAcceptedSchema)
    @blp.alt_response(200, schema=EventAcceptedSchema, description="A repeated key: the first")
    def post(
        self, body: dict[str, Any], header: dict[str, Any], tenant: Tenant
    ) -> tuple[dict[str, Any], int]:
        """Send an event to every matching endpoint (202; 200 for a repeated key)."""
        result = ingest(
            db.session(),
            tenant=tenant,
            event_type=body["type"],
            data=body["data"],
            idempotency_key=_idempotency_key(body, header),
            timestamp=body.get("timestamp"),
        )
        db.session().commit()
        accepted = {
            "id": result.event.id,
            "type": result.event.type,
            "deliveries": result.deliveries,
        }
        return accepted, 202 if result.created else 200


@blp.route("/<id:event_id>")
class EventItem(MethodView):
    @tenant_access("events:read")
    @blp.response(200, EventSchema)
    def get(self, tenant: Tenant, event_id: str) -> EventWithDeliveries:
        """Read an event with its deliveries."""
        return _with_deliveries([queries.get_event(db.session(), tenant.id, event_id)])[0]
