"""``POST .../endpoints/{id}/recover``: redeliver an endpoint's failed deliveries of a window.

For a receiver back from an outage: every delivery to it that failed for good since a time
(and up to another, or now) goes out again. The count is taken at once and returned; the
redelivering runs in the background (:mod:`webhooks.delivery.redelivery`).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.fields import Timestamp
from webhooks.admin import endpoints as rules
from webhooks.delivery.redelivery import start_recovery
from webhooks.models import Tenant

blp = Blueprint(
    "endpoint-recovery",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/endpoints/<id:endpoint_id>",
    description="Recover an endpoint's failed deliveries.",
)


class RecoverSchema(Schema):
    since = Timestamp(required=True, metadata={"description": "Failed deliveries created since"})
    until = Timestamp(metadata={"description": "... and up to this time; default: now"})

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "until" in data and data["since"] > data["until"]:
            raise ValidationError("Must not be before since.", "until")


class RecoveryStartedSchema(Schema):
    deliveries = fields.Integer(
        required=True, metadata={"description": "Failed deliveries being redelivered"}
    )


@blp.route("/recover", methods=["POST"])
@tenant_access("events:write")
@blp.arguments(RecoverSchema)
@blp.response(202, RecoveryStartedSchema)
def recover(body: dict[str, Any], tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    """Redeliver, in the background, every failed delivery of the endpoint in the window."""
    endpoint = rules.get_endpoint(db.session(), tenant.id, endpoint_id)
    count = start_recovery(db.session(), endpoint, body["since"], body.get("until"))
    return {"deliveries": count}
