"""An endpoint's signing secret: revealed on request, rotated with a 24-hour overlap."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.endpoints import EndpointSchema
from api.fields import Text
from webhooks.admin import endpoints as rules
from webhooks.core.clock import now
from webhooks.models import Endpoint, Tenant

blp = Blueprint(
    "endpoint-secrets",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/endpoints/<id:endpoint_id>",
    description="Endpoint signing secrets.",
)


class SecretSchema(Schema):
    secret = Text(required=True)


class RotationSchema(Schema):
    secret = Text(
        metadata={
            "description": "The new secret; generated (whsec_...) when omitted. On an ed25519"
            " endpoint the new private key (whsk_...), generated when omitted"
        }
    )


@blp.route("/secret", methods=["GET"])
# Write, not read: whoever knows the secret can forge our signatures.
@tenant_access("endpoints:write")
@blp.response(200, SecretSchema)
def reveal(tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    """The current signing secret (the only place it is shown); needs ``endpoints:write``."""
    return {"secret": rules.get_endpoint(db.session(), tenant.id, endpoint_id).secret}


@blp.route("/rotate-secret", methods=["POST"])
@tenant_access("endpoints:write")
@blp.arguments(RotationSchema, required=False)
@blp.response(200, EndpointSchema)
def rotate(body: dict[str, Any], tenant: Tenant, endpoint_id: str) -> Endpoint:
    """Make a new secret (ed25519: key pair) current; the old one keeps signing beside it for
    24 hours.

    The answer is the endpoint (with its new ``public_key`` on ed25519), without the secret
    (as every answer but ``GET .../secret``).
    """
    endpoint = rules.get_endpoint(db.session(), tenant.id, endpoint_id)
    rules.rotate_secret(endpoint, body.get("secret"), at=now())
    db.session().commit()
    return endpoint
