"""``POST /v1/tenants/{tenant}/portal-links``: a single-use link into the tenant's console.

What a SaaS hands its own customers so they can manage their webhooks without a token: the
link opens the console signed in for that tenant only (:mod:`webhooks.admin.console_sessions`).
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from marshmallow import Schema, fields, validate

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.fields import Timestamp
from webhooks.admin.console_sessions import PORTAL_LINK_MAX, create_portal_link
from webhooks.models import Tenant

blp = Blueprint(
    "portal-links",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/portal-links",
    description="Portal links: the tenant's console, for the tenant's own people.",
)


class PortalLinkCreateSchema(Schema):
    expires_in = fields.Integer(
        strict=True,
        validate=validate.Range(1, int(PORTAL_LINK_MAX.total_seconds())),
        metadata={"description": "Seconds the link stays valid; default 600"},
    )


class PortalLinkSchema(Schema):
    url = fields.String(required=True, metadata={"description": "Opens the console once"})
    expires_at = Timestamp(required=True)


@blp.route("", methods=["POST"])
@tenant_access("endpoints:write")
@blp.arguments(PortalLinkCreateSchema, required=False)
@blp.response(201, PortalLinkSchema)
def create(body: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
    """Make a single-use link that signs its holder in to this tenant's console."""
    link, key = create_portal_link(db.session(), tenant, body.get("expires_in"))
    db.session().commit()
    return {
        "url": url_for("console.portal", key=key, _external=True),
        "expires_at": link.expires_at,
    }
