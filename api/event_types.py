"""``/v1/tenants/{tenant}/event-types``: the optional catalogue of event types."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.fields import JSON, Text, Timestamp, anchored
from api.pagination import PageArgs, page_of, paginate
from webhooks.ingest import event_types
from webhooks.ingest.event_names import MAX_LENGTH as MAX_NAME_LENGTH
from webhooks.ingest.event_names import NAME_PATTERN
from webhooks.models import EventType, Tenant

blp = Blueprint(
    "event-types",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/event-types",
    description="The catalogue of event types, each with an optional JSON Schema for payloads.",
)

_DESCRIPTION = validate.Length(max=1024)
_SCHEMA_DOC = {"description": "A JSON Schema that payloads of this type must match"}


class EventTypeSchema(Schema):
    name = fields.String(dump_only=True)
    description = fields.String(dump_only=True)
    schema = fields.Dict(dump_only=True, allow_none=True, metadata=_SCHEMA_DOC)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)


class EventTypePatchSchema(Schema):
    description = Text(allow_none=True, validate=_DESCRIPTION)
    schema = JSON(object_only=True, allow_none=True, metadata=_SCHEMA_DOC)


class EventTypeCreateSchema(EventTypePatchSchema):
    name = Text(
        required=True,
        validate=validate.Length(min=1, max=MAX_NAME_LENGTH),
        metadata={
            "description": "Dot-separated segments, e.g. booking.created",
            "pattern": anchored(NAME_PATTERN),
        },
    )


@blp.route("")
class EventTypes(MethodView):
    @tenant_access("endpoints:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(EventTypeSchema))
    def get(self, args: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
        """List the tenant's event types, newest first."""
        return paginate(event_types.event_types_query(tenant.id), EventType.id, args)

    @tenant_access("endpoints:write")
    @blp.arguments(EventTypeCreateSchema)
    @blp.response(201, EventTypeSchema)
    def post(self, body: dict[str, Any], tenant: Tenant) -> EventType:
        """Add an event type; 409 if the name exists."""
        event_type = event_types.create_event_type(
            db.session(),
            tenant.id,
            body["name"],
            description=body.get("description") or "",
            schema=body.get("schema"),
        )
        db.session().commit()
        return event_type


@blp.route("/<event_type:name>")
class EventTypeItem(MethodView):
    @tenant_access("endpoints:read")
    @blp.response(200, EventTypeSchema)
    def get(self, tenant: Tenant, name: str) -> EventType:
        """Read an event type."""
        return event_types.get_event_type(db.session(), tenant.id, name)

    @tenant_access("endpoints:write")
    @blp.arguments(EventTypePatchSchema, required=False)
    @blp.response(200, EventTypeSchema)
    def patch(self, body: dict[str, Any], tenant: Tenant, name: str) -> EventType:
        """Change the description or the schema (null removes the schema)."""
        event_type = event_types.get_event_type(db.session(), tenant.id, name)
        event_types.update_event_type(event_type, body)
        db.session().commit()
        return event_type

    @tenant_access("endpoints:write")
    @blp.response(204)
    def delete(self, tenant: Tenant, name: str) -> None:
        """Remove an event type from the catalogue (events of that type are still accepted)."""
        db.session().delete(event_types.get_event_type(db.session(), tenant.id, name))
        db.session().commit()
