"""``webhooks deliveries ...``: one event on its way to one endpoint, with its attempts; the
queries and the redelivery of the API (:mod:`webhooks.history.queries`,
:mod:`webhooks.delivery.redelivery`)."""

from __future__ import annotations

import json

import click
from sqlalchemy.orm import Session

from webhooks.admin.tenants import get_tenant
from webhooks.core.db import session_scope
from webhooks.core.errors import NotFound
from webhooks.delivery.redelivery import redeliver
from webhooks.history import queries
from webhooks.history.pagination import page
from webhooks.models import Attempt, Delivery, DeliveryStatus
from webhooks.ops.cli.output import attempt_json, delivery_json, json_option, show, show_one
from webhooks.ops.cli.params import LIMIT

_COLUMNS = ("id", "status", "attempts", "last_status_code", "endpoint_id", "event_id", "created_at")
_ATTEMPT_COLUMNS = ("attempt", "started_at", "duration_ms", "status", "error", "id")


@click.group()
def deliveries() -> None:
    """Deliveries: one event on its way to one endpoint."""


def _delivery(session: Session, delivery_id: str) -> Delivery:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id!r}")
    return delivery


@deliveries.command("list")
@click.argument("tenant")
@click.option("--endpoint", "endpoint_id", help="Only deliveries to this endpoint.")
@click.option("--event", "event_id", help="Only deliveries of this event.")
@click.option(
    "--status", type=click.Choice([status.value for status in DeliveryStatus]), help="Only these."
)
@LIMIT
@json_option
def deliveries_list(
    tenant: str,
    endpoint_id: str | None,
    event_id: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List a tenant's deliveries, newest first; the filters combine."""
    with session_scope() as session:
        query = queries.deliveries_query(
            get_tenant(session, tenant).id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            status=status,
        )
        rows = [delivery_json(row) for row in page(session, query, Delivery.id, limit=limit).items]
    show(rows, as_json, *_COLUMNS)


@deliveries.command("show")
@click.argument("delivery_id")
@json_option
def deliveries_show(delivery_id: str, as_json: bool) -> None:
    """Show one delivery."""
    with session_scope() as session:
        shown = delivery_json(_delivery(session, delivery_id))
    show_one(shown, as_json)


@deliveries.command("attempts")
@click.argument("delivery_id")
@LIMIT
@json_option
def deliveries_attempts(delivery_id: str, limit: int, as_json: bool) -> None:
    """A delivery's attempts, newest first (--json: with request and response)."""
    with session_scope() as session:
        query = queries.delivery_attempts_query(_delivery(session, delivery_id).id)
        rows = [attempt_json(row) for row in page(session, query, Attempt.id, limit=limit).items]
    if not as_json:
        for row in rows:
            row["status"] = (row["response"] or {}).get("status")
    show(rows, as_json, *_ATTEMPT_COLUMNS)


@deliveries.command("redeliver")
@click.argument("delivery_id")
def deliveries_redeliver(delivery_id: str) -> None:
    """Queue a delivery again, whatever its state; prints it as JSON."""
    with session_scope() as session:
        delivery = _delivery(session, delivery_id)
        redeliver(session, delivery)
        body = {"id": delivery.id, "status": delivery.status, "attempts": delivery.attempts}
    click.echo(json.dumps(body))
