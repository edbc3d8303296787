"""How the command line shows objects: a readable table by default, JSON with ``--json``.

The JSON is the API's representation of the same object, so a script can move
between ``webhooks ... --json`` and ``curl`` without translating; lists print one object per
line, so that ``grep`` and ``jq`` work line by line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from webhooks.admin.endpoints import rotation_ends_at
from webhooks.core import clock
from webhooks.core.clock import rfc3339
from webhooks.models import Attempt, Delivery, Endpoint, Event

#: ``--json`` on every command that shows objects.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")


def _time(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secret or API key."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "signature_header": endpoint.signature_header,
        "api_key_header": endpoint.api_key_header,
        "headers": endpoint.headers,
        "content_type": endpoint.content_type,
        "template": endpoint.template,
        "retry_schedule": endpoint.retry_schedule,
        "timeout_seconds": endpoint.timeout_seconds,
        "previous_secret_expires_at": _time(rotation_ends_at(endpoint, clock.now())),
        "created_at": _time(endpoint.created_at),
        "updated_at": _time(endpoint.updated_at),
    }


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "endpoint_id": delivery.endpoint_id,
        "status": str(delivery.status),
        "attempts": delivery.attempts,
        "next_attempt_at": _time(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "created_at": _time(delivery.created_at),
        "updated_at": _time(delivery.updated_at),
    }


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    """An attempt with its request and response, as the history keeps them (redacted)."""
    response = None
    if attempt.response_status is not None:
        response = {
            "status": attempt.response_status,
            "headers": attempt.response_headers or {},
            "body": attempt.response_body or "",
        }
    return {
        "id": attempt.id,
        "delivery_id": attempt.delivery_id,
        "attempt": attempt.attempt,
        "started_at": _time(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "request": {
            "url": attempt.request_url,
            "headers": attempt.request_headers,
            "body": attempt.request_body,
        },
        "response": response,
        "error": attempt.error,
    }


def event_json(event: Event, deliveries: Sequence[Delivery]) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": _time(event.timestamp),
        "data": event.data,
        "idempotency_key": event.idempotency_key,
        "created_at": _time(event.created_at),
        "deliveries": [delivery_json(delivery) for delivery in deliveries],
    }


def show(rows: Sequence[dict[str, Any]], as_json: bool, *columns: str) -> None:
    """Print objects (their JSON): JSON lines, or a table of ``columns``."""
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    click.echo(table([[_cell(row, column) for column in columns] for row in rows], columns))


def show_one(row: dict[str, Any], as_json: bool) -> None:
    """Print one object (its JSON): JSON, or one ``field  value`` line per field."""
    if as_json:
        click.echo(json.dumps(row))
        return
    width = max(len(name) for name in row)
    for name, value in row.items():
        text = value if isinstance(value, str) else json.dumps(value)
        click.echo(f"{name:<{width}}  {text}")


def table(rows: Sequence[Sequence[str]], columns: Sequence[str]) -> str:
    """Left-aligned columns under their names; ``(none)`` for an empty list."""
    if not rows:
        return "(none)"
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    lines = [columns, *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and column == "deliveries":
        return str(len(value))
    return json.dumps(value)
