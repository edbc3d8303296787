"""The ``webhooks`` command line: operators' everyday tasks, one readable line on error.

Each command group lives in the module named after it; every command calls the library
functions the API calls.
"""

import logging
from typing import Any

import click

from webhooks.admin.tokens import SCOPES
from webhooks.core.config import get_settings
from webhooks.core.errors import WebhooksError
from webhooks.core.logs import configure_logging
from webhooks.ops import devstack, migrate
from webhooks.ops.cli.deliveries import deliveries
from webhooks.ops.cli.endpoints import endpoints
from webhooks.ops.cli.events import events, send
from webhooks.ops.cli.purge import purge
from webhooks.ops.cli.tenants import tenants
from webhooks.ops.cli.tokens import tokens


class _Group(click.Group):
    """Turns library errors into ``Error: <message>`` and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WebhooksError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(
    cls=_Group,
    epilog=f"Token scopes: {', '.join(SCOPES)}. Settings: see the README's configuration table.",
)
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


for _command in (tenants, tokens, endpoints, events, deliveries, send, purge):
    main.add_command(_command)
