"""``webhooks endpoints ...``: a tenant's receivers, with the rules the API applies
(:mod:`webhooks.admin.endpoints`: the same checks, the same verification PING).

The CLI works across tenants (an operator's tool, like an admin token): an endpoint is named
by its id alone, a list by its tenant.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from sqlalchemy.orm import Session

from webhooks.admin import endpoints as rules
from webhooks.admin.tenants import get_tenant
from webhooks.core import clock
from webhooks.core.db import session_scope
from webhooks.core.errors import InvalidInput, NotFound
from webhooks.delivery.redelivery import Recovery, recover_batches
from webhooks.history.pagination import page
from webhooks.models import Endpoint
from webhooks.ops.cli.output import attempt_json, endpoint_json, json_option, show, show_one
from webhooks.ops.cli.params import LIMIT, TIME
from webhooks.outbound.http import default_transport
from webhooks.outbound.ping import ping_endpoint

_COLUMNS = ("id", "url", "enabled", "event_types", "description")


@click.group()
def endpoints() -> None:
    """Endpoints: where a tenant's events go."""


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    """The endpoint fields named on the command line, as the rules take them."""
    fields: dict[str, Any] = {}
    for name in ("description", "secret", "signature_header", "content_type", "template"):
        if options.get(name) is not None:
            fields[name] = options[name]
    if options.get("api_key_header") is not None:
        fields["api_key_header"] = options["api_key_header"]
        fields["api_key"] = options.get("api_key")
    if options.get("event_types"):
        fields["event_types"] = list(options["event_types"])
    if options.get("headers"):
        fields["headers"] = dict(_header(text) for text in options["headers"])
    if options.get("retry_schedule") is not None:
        fields["retry_schedule"] = _schedule(options["retry_schedule"])
    if options.get("timeout") is not None:
        fields["timeout_seconds"] = options["timeout"]
    if options.get("enabled") is not None:
        fields["enabled"] = options["enabled"]
    return fields


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep:
        raise InvalidInput(f"--header {text!r} must be NAME:VALUE", field="headers")
    return name.strip(), value.strip()


def _schedule(text: str) -> list[int] | None:
    if text == "default":
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(
            f"--retry-schedule {text!r} must be seconds, comma-separated (or 'default')",
            field="retry_schedule",
        ) from None


def _field_options(command: Any) -> Any:
    """The options that set endpoint fields, shared by ``create`` and ``update``."""
    options = [
        click.option("--description", help="Free text."),
        click.option(
            "--event-type",
            "event_types",
            multiple=True,
            help="A type or 'prefix.*' (repeat it); none: every type.",
        ),
        click.option("--secret", help="The signing secret (default on create: generated)."),
        click.option("--signature-header", help="A header with the hex HMAC of the body."),
        click.option("--api-key-header", help="A static API key header's name ..."),
        click.option("--api-key", help="... and its value."),
        click.option(
            "--header", "headers", multiple=True, help="NAME:VALUE sent with every call (repeat)."
        ),
        click.option("--content-type", help="The request's Content-Type."),
        click.option("--template", help="Body template with [path] placeholders."),
        click.option(
            "--retry-schedule",
            help="Seconds before each retry, comma-separated ('' for one attempt, 'default').",
        ),
        click.option("--timeout", type=int, help="Seconds to answer, 1 to 30."),
        click.option("--enabled/--disabled", default=None, help="Pause or resume deliveries."),
        click.option(
            "--no-verify", is_flag=True, help="Skip the PING that must answer 2xx on a change."
        ),
        json_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _endpoint(session: Session, endpoint_id: str) -> Endpoint:
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no endpoint {endpoint_id!r}")
    return endpoint


@endpoints.command("list")
@click.argument("tenant")
@LIMIT
@json_option
def endpoints_list(tenant: str, limit: int, as_json: bool) -> None:
    """List a tenant's endpoints, newest first."""
    with session_scope() as session:
        query = rules.endpoints_query(get_tenant(session, tenant).id)
        rows = [endpoint_json(row) for row in page(session, query, Endpoint.id, limit=limit).items]
    show(rows, as_json, *_COLUMNS)


@endpoints.command("create")
@click.argument("tenant")
@click.argument("url")
@_field_options
def endpoints_create(tenant: str, url: str, no_verify: bool, as_json: bool, **options: Any) -> None:
    """Create an endpoint; unless --no-verify, only if it answers a PING with a 2xx."""
    with session_scope() as session:
        endpoint = rules.create_endpoint(
            session,
            get_tenant(session, tenant).id,
            {"url": url, **_fields(options)},
            transport=default_transport(),
            verify=not no_verify,
        )
        shown = endpoint_json(endpoint)
    show_one(shown, as_json)


@endpoints.command("show")
@click.argument("endpoint_id")
@json_option
def endpoints_show(endpoint_id: str, as_json: bool) -> None:
    """Show one endpoint (never its secret: see the API's GET .../secret)."""
    with session_scope() as session:
        shown = endpoint_json(_endpoint(session, endpoint_id))
    show_one(shown, as_json)


@endpoints.command("update")
@click.argument("endpoint_id")
@click.option("--url", help="A new URL (PINGed unless --no-verify).")
@_field_options
def endpoints_update(
    endpoint_id: str, url: str | None, no_verify: bool, as_json: bool, **options: Any
) -> None:
    """Change the fields given; a change of URL, secret or request shape is PINGed."""
    changes = _fields(options)
    if url is not None:
        changes["url"] = url
    with session_scope() as session:
        endpoint = _endpoint(session, endpoint_id)
        rules.update_endpoint(
            session, endpoint, changes, transport=default_transport(), verify=not no_verify
        )
        shown = endpoint_json(endpoint)
    show_one(shown, as_json)


@endpoints.command("delete")
@click.argument("endpoint_id")
def endpoints_delete(endpoint_id: str) -> None:
    """Delete an endpoint with its deliveries and history."""
    with session_scope() as session:
        session.delete(_endpoint(session, endpoint_id))
    click.echo(f"endpoint {endpoint_id} deleted")


@endpoints.command("ping")
@click.argument("endpoint_id")
@json_option
def endpoints_ping(endpoint_id: str, as_json: bool) -> None:
    """Send a signed PING now and show the attempt, whatever the receiver answered."""
    with session_scope() as session:
        endpoint = _endpoint(session, endpoint_id)
        attempt = ping_endpoint(session, endpoint, default_transport(), at=clock.now())
        shown = attempt_json(attempt)
    show_one(shown, as_json)


@endpoints.command("recover")
@click.argument("endpoint_id")
@click.option("--since", required=True, type=TIME, help="Failed deliveries created since.")
@click.option("--until", type=TIME, default=None, help="... and up to (default: now).")
def endpoints_recover(endpoint_id: str, since: datetime, until: datetime | None) -> None:
    """Redeliver an endpoint's failed deliveries of a window; prints how many."""
    with session_scope() as session:
        _endpoint(session, endpoint_id)
    count = recover_batches(Recovery(endpoint_id, since, until or clock.now()))
    click.echo(json.dumps({"deliveries": count}))
