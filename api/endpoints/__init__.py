"""``/v1/tenants/{tenant}/endpoints``: where a tenant's events go and how requests look.

The rules live in :mod:`webhooks.admin.endpoints`; this module maps them to HTTP. The secret,
the API key, the ed25519 private key, auth passwords, tokens and client secrets and a client
certificate's key are never part of an endpoint's representation: the secret is revealed only
by ``GET .../secret`` (:mod:`api.endpoints.secrets`), the others never.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, missing, validate

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.fields import JSON, MaskedHeaders, Number, Text, Timestamp, anchored
from api.pagination import PageArgs, page_of, paginate
from webhooks.admin import endpoints as rules
from webhooks.core import clock
from webhooks.core.clock import rfc3339
from webhooks.delivery import rate_limit
from webhooks.delivery.circuit import CircuitState, circuit_of
from webhooks.ingest.event_names import FILTER_PATTERN
from webhooks.models import Endpoint, Tenant
from webhooks.outbound import client_tls, receiver_auth, signing
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


class _Shown(fields.Nested):
    """A stored object shown through ``view``, which leaves out what must never be shown."""

    def __init__(self, nested: type[Schema], view: Callable[[Any], Any], **kwargs: Any) -> None:
        super().__init__(nested, **kwargs)
        self._view = view

    def get_value(
        self,
        obj: Any,
        attr: str,
        accessor: Callable[[Any, str, Any], Any] | None = None,
        default: Any = missing,
    ) -> Any:
        return self._view(super().get_value(obj, attr, accessor, default))


class AuthViewSchema(Schema):
    """An endpoint's ``auth`` as shown: without its password, token or client secret."""

    type = fields.String(required=True, metadata={"enum": list(receiver_auth.TYPES)})
    username = fields.String(metadata={"description": "basic"})
    token_url = fields.String(metadata={"description": "oauth2"})
    client_id = fields.String(metadata={"description": "oauth2"})
    scope = fields.String(metadata={"description": "oauth2, if set"})
    audience = fields.String(metadata={"description": "oauth2, if set"})


class ClientCertificateViewSchema(Schema):
    """An endpoint's client certificate as shown: the chain and its expiry, never the key."""

    cert = fields.String(required=True)
    expires_at = Timestamp(required=True)


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
    headers = MaskedHeaders(
        dump_only=True,
        metadata={
            "description": "Custom headers; credential-like values (Authorization, Cookie, "
            "names containing token, key, secret, password or signature) read [redacted]"
        },
    )
    content_type = fields.String(dump_only=True)
    template = fields.String(dump_only=True, allow_none=True)
    retry_schedule = fields.List(fields.Integer(), dump_only=True, allow_none=True)
    timeout_seconds = fields.Integer(dump_only=True)
    signing = fields.String(dump_only=True, metadata={"enum": list(signing.SCHEMES)})
    public_key = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "whpk_ key that verifies the v1a signatures (ed25519 only)"},
    )
    auth = _Shown(AuthViewSchema, receiver_auth.public_view, dump_only=True, allow_none=True)
    client_certificate = _Shown(
        ClientCertificateViewSchema, client_tls.public_view, dump_only=True, allow_none=True
    )
    previous_secret_expires_at = fields.Function(
        lambda endpoint: _rotation_end(endpoint),
        dump_only=True,
        metadata={
            "type": "string",
            "format": "date-time",
            "nullable": True,
            "description": "While a rotation is under way: when the previous secret stops "
            "signing beside the current one (null otherwise)",
        },
    )
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


class AuthSchema(Schema):
    """``basic``: username, password; ``bearer``: token; ``oauth2``: token_url, client_id,
    client_secret, optional scope and audience (client-credentials grant)."""

    type = Text(required=True, validate=validate.OneOf(receiver_auth.TYPES))
    username = Text()
    password = Text(load_only=True)
    token = Text(load_only=True)
    token_url = Text()
    client_id = Text()
    client_secret = Text(load_only=True)
    scope = Text(allow_none=True)
    audience = Text(allow_none=True)


class ClientCertificateSchema(Schema):
    cert = Text(required=True, metadata={"description": "PEM certificate chain, leaf first"})
    key = Text(required=True, load_only=True, metadata={"description": "PEM private key"})


def _rotation_end(endpoint: Endpoint) -> str | None:
    ends = rules.rotation_ends_at(endpoint, clock.now())
    return None if ends is None else rfc3339(ends)


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
    signing = Text(
        allow_none=True,
        validate=validate.OneOf(signing.SCHEMES),
        metadata={"description": "hmac (v1 signatures) or ed25519 (v1a, with a key pair)"},
    )
    auth = fields.Nested(
        AuthSchema,
        allow_none=True,
        metadata={"description": "How to authenticate to the receiver; null: no auth"},
    )
    client_certificate = fields.Nested(
        ClientCertificateSchema,
        allow_none=True,
        metadata={"description": "Presented to receivers that ask for mutual TLS"},
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
