"""``/v1/tenants/{tenant}/tokens``: API tokens bound to a tenant. Managed with admin tokens.

A token's plaintext is shown once, when it is created; only its hash is stored.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from api import db
from api.auth import ADMIN, tenant_access
from api.blueprint import Blueprint
from api.fields import Timestamp
from api.pagination import PageArgs, page_of, paginate
from webhooks.admin import tokens
from webhooks.core.errors import NotFound
from webhooks.models import ApiToken, Tenant

blp = Blueprint(
    "tokens",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/tokens",
    description="API tokens bound to a tenant, with scopes (admin).",
)


class TokenCreateSchema(Schema):
    scopes = fields.List(
        fields.String(validate=validate.OneOf(tokens.SCOPES)),
        required=True,
        validate=validate.Length(min=1, max=len(tokens.SCOPES)),
    )


class NewTokenSchema(Schema):
    id = fields.String(dump_only=True)
    token = fields.String(dump_only=True, metadata={"description": "Shown only this once"})
    scopes = fields.List(fields.String(), dump_only=True)


class TokenSchema(Schema):
    id = fields.String(dump_only=True)
    scopes = fields.List(fields.String(), dump_only=True)
    created_at = Timestamp(dump_only=True)
    revoked_at = Timestamp(dump_only=True, allow_none=True)


@blp.route("")
class Tokens(MethodView):
    @tenant_access(ADMIN)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(TokenSchema))
    def get(self, args: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
        """List the tenant's tokens (never their values), newest first."""
        return paginate(select(ApiToken).where(ApiToken.tenant_id == tenant.id), ApiToken.id, args)

    @tenant_access(ADMIN)
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, NewTokenSchema)
    def post(self, body: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
        """Issue a token for the tenant; its value is in this response only."""
        token, plaintext = tokens.create_token(db.session(), tenant=tenant, scopes=body["scopes"])
        db.session().commit()
        return {"id": token.id, "token": plaintext, "scopes": token.scopes}


@blp.route("/<id:token_id>")
class TokenItem(MethodView):
    @tenant_access(ADMIN)
    @blp.response(204)
    def delete(self, tenant: Tenant, token_id: str) -> None:
        """Revoke a token; it stops working at once (revoking twice is harmless)."""
        token = db.session().scalar(
            select(ApiToken).where(ApiToken.tenant_id == tenant.id, ApiToken.id == token_id)
        )
        if token is None:
            raise NotFound(f"no token {token_id!r}")
        if token.revoked_at is None:
            tokens.revoke(token)
        db.session().commit()
