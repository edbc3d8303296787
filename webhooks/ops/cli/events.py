"""``webhooks events ...`` and ``webhooks send``: a tenant's events with their deliveries."""

from __future__ import annotations

import json

import click
from sqlalchemy import Select

from webhooks.admin.tenants import get_tenant
from webhooks.core.db import session_scope
from webhooks.core.errors import NotFound
from webhooks.history import queries
from webhooks.history.pagination import page
from webhooks.ingest.enqueue import enqueue_event
from webhooks.models import Delivery, Event
from webhooks.ops.cli.output import event_json, json_option, show, show_one
from webhooks.ops.cli.params import LIMIT

_COLUMNS = ("id", "type", "timestamp", "deliveries", "idempotency_key")


@click.group()
def events() -> None:
    """Events: what producers sent."""


@events.command("list")
@click.argument("tenant")
@click.option("--type", "event_type", help="Only events of this type.")
@LIMIT
@json_option
def events_list(tenant: str, event_type: str | None, limit: int, as_json: bool) -> None:
    """List a tenant's events with their deliveries, newest first."""
    with session_scope() as session:
        tenant_id = get_tenant(session, tenant).id
        query = queries.events_query(tenant_id, event_type=event_type)
        rows = [
            event_json(event, list(session.scalars(_deliveries(tenant_id, event.id))))
            for event in page(session, query, Event.id, limit=limit).items
        ]
    show(rows, as_json, *_COLUMNS)


@events.command("show")
@click.argument("event_id")
@json_option
def events_show(event_id: str, as_json: bool) -> None:
    """Show one event with its deliveries."""
    with session_scope() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise NotFound(f"no event {event_id!r}")
        shown = event_json(event, list(session.scalars(_deliveries(event.tenant_id, event.id))))
    show_one(shown, as_json)


def _deliveries(tenant_id: str, event_id: str) -> Select[Delivery]:
    return queries.deliveries_query(tenant_id, event_id=event_id).order_by(Delivery.id)


@click.command("send")
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
