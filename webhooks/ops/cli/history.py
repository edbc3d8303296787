"""``webhooks deliveries ...``, ``webhooks endpoints ...``, ``webhooks purge``: history
operations for operators, the same functions the API and beat call.

The CLI works across tenants (an operator's tool, like an admin token), and runs a recovery
in the foreground, batch after batch, printing how many deliveries it queued again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from webhooks.core import clock
from webhooks.core.db import session_scope
from webhooks.core.errors import NotFound
from webhooks.delivery.redelivery import Recovery, recover_batches, redeliver
from webhooks.history import retention
from webhooks.models import Delivery, Endpoint


class _Time(click.ParamType):  # type: ignore[type-arg]
    """An RFC 3339 time with an offset (``2026-11-22T10:00:00Z``)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.fail(f"{value!r} is not an RFC 3339 time with an offset", param, ctx)
        return parsed


TIME = _Time()


@click.group()
def deliveries() -> None:
    """Deliveries."""


@deliveries.command("redeliver")
@click.argument("delivery_id")
def deliveries_redeliver(delivery_id: str) -> None:
    """Queue a delivery again, whatever its state; prints it as JSON."""
    with session_scope() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        redeliver(session, delivery)
        body = {"id": delivery.id, "status": delivery.status, "attempts": delivery.attempts}
    click.echo(json.dumps(body))


@click.group()
def endpoints() -> None:
    """Endpoints."""


@endpoints.command("recover")
@click.argument("endpoint_id")
@click.option("--since", required=True, type=TIME, help="Failed deliveries created since.")
@click.option("--until", type=TIME, default=None, help="... and up to (default: now).")
def endpoints_recover(endpoint_id: str, since: datetime, until: datetime | None) -> None:
    """Redeliver an endpoint's failed deliveries of a window; prints how many."""
    with session_scope() as session:
        if session.get(Endpoint, endpoint_id) is None:
            raise NotFound(f"no endpoint {endpoint_id!r}")
    count = recover_batches(Recovery(endpoint_id, since, until or clock.now()))
    click.echo(json.dumps({"deliveries": count}))


@click.command("purge")
def purge() -> None:
    """Delete the history older than WEBHOOKS_HISTORY_RETENTION_DAYS now; prints the counts."""
    purged = retention.purge()
    click.echo(
        json.dumps(
            {"attempts": purged.attempts, "deliveries": purged.deliveries, "events": purged.events}
        )
    )


COMMANDS = (deliveries, endpoints, purge)
