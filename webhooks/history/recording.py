"""Execution history: turning one request and its outcome into an attempt row (contract §7).

:func:`attempt_values` is the one mapping from a request and its outcome to the row's
columns, for PINGs (through the ORM) and for deliveries (both storage paths of the engine).
"""

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

from webhooks.models import Attempt
from webhooks.outbound.outcome import MAX_BODY_BYTES, Outcome
from webhooks.outbound.request import OutgoingRequest, RequestTarget, redacted_headers

_ATTEMPTS = cast(Table, Attempt.__table__)

#: The attempt columns holding JSON, which the engine's statements pass as JSON text.
JSON_COLUMNS = frozenset(c.name for c in _ATTEMPTS.columns if isinstance(c.type, JSON))


def as_text(body: bytes) -> str:
    """Bytes as storable text: invalid UTF-8 and NUL (which Postgres text refuses) replaced."""
    return body.decode("utf-8", "replace").replace("\x00", "\ufffd")


def attempt_values(
    *,
    endpoint: RequestTarget,
    delivery_id: str | None,
    number: int,
    request: OutgoingRequest,
    outcome: Outcome,
    started_at: datetime,
) -> dict[str, Any]:
    """The attempt row's columns (all but ``id`` and ``stale``) for ``request``."""
    has_response = outcome.status is not None
    return {
        "tenant_id": endpoint.tenant_id,
        "delivery_id": delivery_id,
        "endpoint_id": endpoint.id,
        "attempt": number,
        "started_at": started_at,
        "duration_ms": outcome.duration_ms,
        "request_url": request.url,
        "request_headers": redacted_headers(request, endpoint),
        "request_body": as_text(request.body),
        "response_status": outcome.status,
        "response_headers": dict(outcome.headers) if has_response else None,
        "response_body": as_text(outcome.body[:MAX_BODY_BYTES]) if has_response else None,
        "error": outcome.error,
    }


def as_json_text(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the JSON columns serialised, for statements written as SQL text."""
    return {
        name: (
            json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            if name in JSON_COLUMNS and value is not None
            else value
        )
        for name, value in values.items()
    }


def insert_attempt_sql(*, stale: str) -> str:
    """The insert of an attempt row from :func:`attempt_values`' parameters, ``:id``, and
    ``stale`` (SQL); a second run with the same id (a retried record) inserts nothing."""
    names = ["id", *_VALUE_COLUMNS]
    return (
        f"INSERT INTO attempts ({', '.join(names)}, stale) "
        f"VALUES ({', '.join(':' + name for name in names)}, {stale}) "
        "ON CONFLICT (id) DO NOTHING"
    )


_VALUE_COLUMNS = (
    "tenant_id",
    "delivery_id",
    "endpoint_id",
    "attempt",
    "started_at",
    "duration_ms",
    "request_url",
    "request_headers",
    "request_body",
    "response_status",
    "response_headers",
    "response_body",
    "error",
)


def record_attempt(session: Session, values: dict[str, Any]) -> Attempt:
    """Add the attempt row of :func:`attempt_values` through the ORM (a PING's)."""
    attempt = Attempt(**values)
    session.add(attempt)
    return attempt
