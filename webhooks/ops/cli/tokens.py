"""``webhooks tokens ...``: API tokens, admin or bound to one tenant with scopes."""

from __future__ import annotations

import click

from webhooks.admin.tenants import get_tenant
from webhooks.admin.tokens import SCOPES, create_token, revoke_by_id
from webhooks.core.db import session_scope


@click.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create", epilog=f"Scopes: {', '.join(SCOPES)}.")
@click.option("--admin", is_flag=True, help="An admin token (all tenants).")
@click.option("--tenant", "tenant_ref", help="The tenant (id or uid) the token is bound to.")
@click.option(
    "--scopes",
    default="",
    help=f"Comma-separated scopes for a tenant token, of: {', '.join(SCOPES)}.",
)
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
