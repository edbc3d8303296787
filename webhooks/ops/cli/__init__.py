"""The ``webhooks`` command line: operators' everyday tasks, one readable line on error."""

import json
import logging
import sys
from typing import Any

import click
from sqlalchemy import select

from webhooks.admin.tenants import create_tenant, get_tenant
from webhooks.admin.tokens import create_token, revoke_by_id
from webhooks.core.clock import rfc3339
from webhooks.core.config import get_settings
from webhooks.core.db import session_scope
from webhooks.core.errors import WebhooksError
from webhooks.core.logs import configure_logging
from webhooks.ingest.enqueue import enqueue_event
from webhooks.models import Tenant
from webhooks.ops import devstack, migrate
from webhooks.ops.cli import history as cli_history


class _Group(click.Group):
    """Turns library errors into ``Error: <message>`` and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WebhooksError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.version_option(package_name="webhooks-dispatcher")
def main() -> None:
    """Self-hosted webhook dispatcher."""
    configure_logging(get_settings(), logging.WARNING)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or migrate it to the newest version (safe to repeat)."""
    migrate.upgrade()
    click.echo("database is up to date")


@main.group()
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


@main.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.option("--admin", is_flag=True, help="An admin token (all tenants).")
@click.option("--tenant", "tenant_ref", help="The tenant (id or uid) the token is bound to.")
@click.option("--scopes", default="", help="Comma-separated scopes for a tenant token.")
def tokens_create(admin: bool, tenant_ref: str | None, scopes: str) -> None:
    """Create a token; it is printed once, on the last line."""
    if admin == bool(tenant_ref):
        raise click.UsageError("give exactly one of --admin or --tenant UID")
    if tenant_ref and not scopes:
        raise click.UsageError("a tenant token needs --scopes")
    with session_scope() as session:
        tenant = get_tenant(session, tenant_ref) if tenant_ref else None
        wanted = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        token, plaintext = create_token(session, tenant=tenant, scopes=wanted)
        click.echo(f"token {token.id} created; it is shown only once:", err=True)
    click.echo(plaintext)


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id (``tok_...``), admin tokens included."""
    with session_scope() as session:
        token = revoke_by_id(session, token_id)
    click.echo(f"token {token.id} revoked")


@main.command("send")
@click.argument("tenant")
@click.argument("event_type", metavar="TYPE")
@click.argument("payload", metavar="JSON")
@click.option("--idempotency-key", default=None, help="Send at most once per key and tenant.")
def send(tenant: str, event_type: str, payload: str, idempotency_key: str | None) -> None:
    """Enqueue one event (as enqueue_event does) and print its id."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"JSON is not valid JSON: {exc}") from None
    click.echo(enqueue_event(event_type, data, tenant=tenant, idempotency_key=idempotency_key))


@main.command("dev")
@click.option(
    "--demo",
    is_flag=True,
    help="Also send a demo event to a local receiver (implies --allow-local).",
)
@click.option(
    "--allow-local",
    is_flag=True,
    help="Allow http:// endpoints on this machine (WEBHOOKS_ALLOW_HTTP=1, "
    "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS=127.0.0.0/8,::1/128), unless those are set.",
)
@click.option("--port", default=8000, show_default=True, help="The API's port.")
@click.option(
    "--flower-port", default=5555, show_default=True, help="Flower's port (Redis/RabbitMQ only)."
)
def dev(demo: bool, allow_local: bool, port: int, flower_port: int) -> None:
    """Run API, worker and beat (and Flower) together until Ctrl-C or SIGTERM."""
    devstack.run(
        get_settings(),
        demo=demo,
        allow_local=allow_local,
        api_port=port,
        flower_port=flower_port,
        echo=click.echo,
    )


# History operations (redeliver, recover, purge) live in their own module.
for _command in cli_history.COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
