"""``POST .../endpoints/{id}/ping``: send a PING now and report what happened."""

from __future__ import annotations

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.schemas import AttemptSchema
from webhooks.admin import endpoints as rules
from webhooks.core.clock import now
from webhooks.models import Attempt, Tenant
from webhooks.outbound.http import default_transport
from webhooks.outbound.ping import ping_endpoint

blp = Blueprint(
    "endpoint-ping",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/endpoints/<id:endpoint_id>",
    description="Test an endpoint with a PING.",
)


@blp.route("/ping", methods=["POST"])
@tenant_access("endpoints:write")
@blp.response(200, AttemptSchema)
def ping(tenant: Tenant, endpoint_id: str) -> Attempt:
    """Send a signed PING and return the attempt, whatever the receiver answered."""
    endpoint = rules.get_endpoint(db.session(), tenant.id, endpoint_id)
    attempt = ping_endpoint(db.session(), endpoint, default_transport(), at=now())
    db.session().commit()
    return attempt
