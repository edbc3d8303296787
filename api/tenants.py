"""``/v1/tenants``: the customers of the platform. Managed with admin tokens."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from api import db
from api.auth import ADMIN, admin_only, tenant_access
from api.blueprint import Blueprint
from api.fields import Text, Timestamp, anchored
from api.pagination import PageArgs, page_of, paginate
from webhooks.admin.tenants import UID_PATTERN, create_tenant
from webhooks.models import Tenant

blp = Blueprint(
    "tenants",
    __name__,
    url_prefix="/v1/tenants",
    description="Tenants. {tenant} in paths is a tenant's id or uid.",
)

_NAME = validate.Length(max=200)


class TenantSchema(Schema):
    id = fields.String(dump_only=True)
    uid = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)


class TenantCreateSchema(Schema):
    uid = Text(
        required=True,
        metadata={
            "description": "What producers pass as tenant=; must not start with ten_",
            "pattern": anchored(UID_PATTERN),
        },
    )
    name = Text(load_default="", validate=_NAME)


class TenantPatchSchema(Schema):
    name = Text(validate=_NAME)


@blp.route("")
class Tenants(MethodView):
    @admin_only
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(TenantSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List tenants, newest first."""
        return paginate(select(Tenant), Tenant.id, args)

    @admin_only
    @blp.arguments(TenantCreateSchema)
    @blp.response(201, TenantSchema)
    def post(self, body: dict[str, Any]) -> Tenant:
        """Create a tenant; 409 if the uid is taken."""
        tenant = create_tenant(db.session(), body["uid"], body["name"])
        db.session().commit()
        return tenant


@blp.route("/<tenant:tenant>")
class TenantItem(MethodView):
    @tenant_access(None)
    @blp.response(200, TenantSchema)
    def get(self, tenant: Tenant) -> Tenant:
        """Read a tenant (admin, or any token of that tenant)."""
        return tenant

    @tenant_access(ADMIN)
    @blp.arguments(TenantPatchSchema, required=False)
    @blp.response(200, TenantSchema)
    def patch(self, body: dict[str, Any], tenant: Tenant) -> Tenant:
        """Rename a tenant (its uid, which producers use, does not change)."""
        if "name" in body:
            tenant.name = body["name"]
        db.session().commit()
        return tenant

    @tenant_access(ADMIN)
    @blp.response(204)
    def delete(self, tenant: Tenant) -> None:
        """Delete a tenant with everything it owns: endpoints, events, history, tokens."""
        db.session().delete(tenant)
        db.session().commit()
