"""``webhooks tenants ...``: the accounts whose events are dispatched."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from webhooks.admin.tenants import create_tenant
from webhooks.core.clock import rfc3339
from webhooks.core.db import session_scope
from webhooks.models import Tenant


@click.group()
def tenants() -> None:
    """Tenants."""


@tenants.command("create")
@click.argument("uid")
@click.option("--name", default="", help="Display name.")
def tenants_create(uid: str, name: str) -> None:
    """Create a tenant and print it as JSON."""
    with session_scope() as session:
        body = _tenant_json(create_tenant(session, uid, name))
    click.echo(json.dumps(body))


@tenants.command("list")
def tenants_list() -> None:
    """Print every tenant as JSON, one per line, oldest first."""
    with session_scope() as session:
        for tenant in session.scalars(select(Tenant).order_by(Tenant.id)):
            click.echo(json.dumps(_tenant_json(tenant)))


def _tenant_json(tenant: Tenant) -> dict[str, str]:
    return {
        "id": tenant.id,
        "uid": tenant.uid,
        "name": tenant.name,
        "created_at": rfc3339(tenant.created_at),
    }
