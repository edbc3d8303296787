"""``/v1/tenants/{tenant}/endpoints``: where a tenant's events go and how requests look.

The rules live in :mod:`webhooks.endpoints`; this module maps them to HTTP. The secret and the
API key are never part of an endpoint's representation: the secret is revealed only by
``GET .../secret`` (:mod:`api.endpoints.secrets`).
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.fields import JSON, Number, Text, Timestamp, anchored
from api.pagination import PageArgs, page_of, paginate
from webhooks.admin import endpoints as rules
from webhooks.core import clock
from webhooks.delivery import rate_limit
from webhooks.delivery.circuit import CircuitState, circuit_of
from webhooks.ingest.event_names import FILTER_PATTERN
from webhooks.models import Endpoint, Tenant
from webhooks.outbound.http import default_transport

blp = Blueprint(
    "endpoints",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/endpoints",
    description="Endpoints: receivers of a tenant's events.",
)


_HEADER_NAME_DOC = {"pattern": anchored(rules.HEADER_NAME), "maxLength": rules.MAX_HEADER_NAME}


def _strict_boolean(**kwargs: Any) -> fields.Boolean:
    """A JSON boolean, not any of the strings and numbers marshmallow reads as one."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


class EndpointSchema(Schema):
    id = fields.String(dump_only=True)
    url = fields.String(dump_only=True)
    description = fields.String(dump_only=True)
    event_types = fields.List(fields.String(), dump_only=True)
    enabled = fields.Boolean(dump_only=True)
    disabled_reason = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Why the dispatcher disabled it on its own, if it did"},
    )
    signature_header = fields.String(dump_only=True, allow_none=True)
    api_key_header = fields.String(dump_only=True, allow_none=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String(), dump_only=True)
    content_type = fields.String(dump_only=True)
    template = fields.String(dump_only=True, allow_none=True)
    retry_schedule = fields.List(fields.Integer(), dump_only=True, allow_none=True)
    timeout_seconds = fields.Integer(dump_only=True)
    filter = fields.Dict(dump_only=True, allow_none=True)
    rate_limit = fields.Float(dump_only=True, allow_none=True)
    ordering = fields.String(dump_only=True, metadata={"enum": list(rules.ORDERINGS)})
    circuit = fields.Function(
        lambda endpoint: str(circuit_of(endpoint).shown(clock.now())),
        dump_only=True,
        metadata={
            "enum": [str(state) for state in CircuitState],
            "description": "The circuit breaker: closed, open (deliveries wait), half_open"
            " (a probe is due or on its way)",
        },
    )
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)


class EndpointPatchSchema(Schema):
    """Any subset of the fields; null resets a field to its default."""

    url = Text(metadata={"description": "https:// URL (http:// where the operator allows it)"})
    description = Text(allow_none=True, metadata={"maxLength": rules.MAX_DESCRIPTION})
    event_types = fields.List(
        Text(metadata={"pattern": anchored(FILTER_PATTERN)}),
        allow_none=True,
        metadata={
            "maxItems": rules.MAX_EVENT_TYPES,
            "description": "Types or 'prefix.*' patterns; empty: every type",
        },
    )
    enabled = _strict_boolean(allow_none=True)
    secret = Text(
        allow_none=True,
        metadata={"description": "whsec_ + base64 of 24-64 bytes, or 6-128 printable characters"},
    )
    signature_header = Text(
        allow_none=True,
        metadata={
            "description": "Header carrying the hex HMAC-SHA256 of the body",
            **_HEADER_NAME_DOC,
        },
    )
    api_key_header = Text(allow_none=True, metadata=_HEADER_NAME_DOC)
    api_key = Text(
        allow_none=True,
        metadata={
            "description": "Required with api_key_header",
            "pattern": anchored(rules.HEADER_VALUE),
        },
    )
    headers = fields.Dict(
        keys=Text(),
        values=Text(metadata={"pattern": anchored(rules.HEADER_VALUE)}),
        allow_none=True,
        metadata={"maxProperties": rules.MAX_HEADERS},
    )
    content_type = Text(
        allow_none=True,
        metadata={"maxLength": rules.MAX_CONTENT_TYPE, "pattern": anchored(rules.MEDIA_TYPE)},
    )
    template = Text(
        allow_none=True,
        metadata={"description": "Body template with [path] placeholders into the envelope"},
    )
    retry_schedule = fields.List(
        fields.Integer(strict=True, metadata={"minimum": 0, "maximum": rules.MAX_RETRY_DELAY}),
        allow_none=True,
        metadata={
            "maxItems": rules.MAX_RETRIES,
            "description": "Seconds before each retry; null: the default schedule",
        },
    )
    timeout_seconds = fields.Integer(
        strict=True,
        allow_none=True,
        metadata={"minimum": rules.TIMEOUT_RANGE[0], "maximum": rules.TIMEOUT_RANGE[1]},
    )
    filter = JSON(
        object_only=True,
        allow_none=True,
        metadata={
            "description": "A condition on the envelope: {path: value or {$operator: ...}},"
            " $and/$or/$not; null: every event of its types",
        },
    )
    rate_limit = Number(
        allow_none=True,
        metadata={
            "minimum": rate_limit.MIN_RATE,
            "maximum": rate_limit.MAX_RATE,
            "description": "Most deliveries per second, across every worker; null: unlimited",
        },
    )
    ordering = Text(
        allow_none=True,
        validate=validate.OneOf(rules.ORDERINGS),
        metadata={"description": "fifo: one delivery at a time, in event order"},
    )
    verify = _strict_boolean(
        load_default=True,
        metadata={"description": "Send a PING and refuse the change unless it answers 2xx"},
    )


class EndpointCreateSchema(EndpointPatchSchema):
    url = Text(
        required=True,
        metadata={"description": "https:// URL (http:// where the operator allows it)"},
    )


@blp.route("")
class Endpoints(MethodView):
    @tenant_access("endpoints:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(EndpointSchema))
    def get(self, args: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
        """List the tenant's endpoints, newest first."""
        return paginate(rules.endpoints_query(tenant.id), Endpoint.id, args)

    @tenant_access("endpoints:write")
    @blp.arguments(EndpointCreateSchema)
    @blp.response(201, EndpointSchema)
    def post(self, body: dict[str, Any], tenant: Tenant) -> Endpoint:
        """Create an endpoint; with verify, only if it answers a PING with a 2xx."""
        verify = body.pop("verify")
        endpoint = rules.create_endpoint(
            db.session(), tenant.id, body, transport=default_transport(), verify=verify
        )
        db.session().commit()
        return endpoint


@blp.route("/<id:endpoint_id>")
class EndpointItem(MethodView):
    @tenant_access("endpoints:read")
    @blp.response(200, EndpointSchema)
    def get(self, tenant: Tenant, endpoint_id: str) -> Endpoint:
        """Read an endpoint (without its secret)."""
        return rules.get_endpoint(db.session(), tenant.id, endpoint_id)

    @tenant_access("endpoints:write")
    @blp.arguments(EndpointPatchSchema, required=False)
    @blp.response(200, EndpointSchema)
    def patch(self, body: dict[str, Any], tenant: Tenant, endpoint_id: str) -> Endpoint:
        """Change any fields; a change to the URL, secret, auth or request shape is PINGed."""
        verify = body.pop("verify")
        endpoint = rules.get_endpoint(db.session(), tenant.id, endpoint_id)
        rules.update_endpoint(
            db.session(), endpoint, body, transport=default_transport(), verify=verify
        )
        db.session().commit()
        return endpoint

    @tenant_access("endpoints:write")
    @blp.response(204)
    def delete(self, tenant: Tenant, endpoint_id: str) -> None:
        """Delete an endpoint with its deliveries and history."""
        db.session().delete(rules.get_endpoint(db.session(), tenant.id, endpoint_id))
        db.session().commit()
