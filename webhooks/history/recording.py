"""Execution history: turning one request and its outcome into an attempt row.

:func:`attempt_values` is the one mapping from a request and its outcome to the row's
columns, for PINGs (through the ORM) and for deliveries (both storage paths of the engine).

Half of an attempt row is written by the receiver: its status line, headers and body are
whatever bytes a server chose to send, and the server may be hostile. Postgres refuses NUL
in text and jsonb and refuses invalid UTF-8; a server may send thousands of headers or
megabyte values. Everything stored goes through :func:`as_text` and :func:`storable_headers`
first, so that recording an attempt cannot fail on what a receiver sent, and credentials go
through :mod:`webhooks.core.redaction`, so that the history keeps no more of them than the
logs do.
"""

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

from webhooks.core.redaction import mask_headers, mask_url
from webhooks.models import Attempt
from webhooks.outbound.outcome import MAX_BODY_BYTES, Outcome
from webhooks.outbound.request import OutgoingRequest, RequestTarget

_ATTEMPTS = cast(Table, Attempt.__table__)

#: The attempt columns holding JSON, which the engine's statements pass as JSON text.
JSON_COLUMNS = frozenset(c.name for c in _ATTEMPTS.columns if isinstance(c.type, JSON))

#: Most headers kept of one response (a legitimate one has a few dozen).
MAX_HEADERS = 100
#: Longest header name and value kept; longer ones are cut.
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 8 * 1024
#: Most characters of header names and values kept per response, all together.
MAX_HEADER_TOTAL = 64 * 1024

#: What Postgres text cannot hold: NUL, and lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def as_text(body: bytes | str, limit: int | None = None) -> str:
    """Bytes (or text) as storable text: invalid UTF-8, NUL and lone surrogates replaced."""
    if isinstance(body, bytes):
        chunk = body if limit is None else body[:limit]
        text = chunk.decode("utf-8", "replace")
    else:
        text = body if limit is None else body[:limit]
    return _UNSTORABLE.sub("\ufffd", text)


def storable_headers(headers: Mapping[str, Any], hidden: Iterable[str] = ()) -> dict[str, str]:
    """Headers as history keeps them: storable text, credentials (and ``hidden`` names)
    masked, bounded in size.

    At most :data:`MAX_HEADERS` headers and :data:`MAX_HEADER_TOTAL` characters are kept,
    in the order received; names and values longer than their limits are cut. Names that
    become equal once cleaned keep their first value.
    """
    kept: dict[str, str] = {}
    budget = MAX_HEADER_TOTAL
    for raw_name, raw_value in mask_headers(
        {str(k): str(v) for k, v in headers.items()}, hidden
    ).items():
        if len(kept) >= MAX_HEADERS:
            break
        name = as_text(raw_name, MAX_HEADER_NAME)
        value = as_text(raw_value, MAX_HEADER_VALUE)
        budget -= len(name) + len(value)
        if budget < 0:
            break
        kept.setdefault(name, value)
    return kept


def request_headers(request: OutgoingRequest, endpoint: RequestTarget) -> dict[str, str]:
    """The request's headers as history keeps them: signatures, API key, credentials hidden."""
    hidden = {"webhook-signature"}
    for name in (endpoint.signature_header, endpoint.api_key_header):
        if name:
            hidden.add(name)
    return storable_headers(request.headers, hidden)


def response_headers(outcome: Outcome) -> dict[str, str] | None:
    """The response's headers as history keeps them; None when nothing was received."""
    return storable_headers(outcome.headers) if outcome.status is not None else None


def request_url(url: str) -> str:
    """The URL as history keeps it: query values (Slack-style tokens) masked."""
    return as_text(mask_url(url))


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
        "request_url": request_url(request.url),
        "request_headers": request_headers(request, endpoint),
        "request_body": as_text(request.body),
        "response_status": outcome.status,
        "response_headers": response_headers(outcome),
        "response_body": as_text(outcome.body, MAX_BODY_BYTES) if has_response else None,
        "error": None if outcome.error is None else as_text(outcome.error),
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
    ``stale`` (SQL); a second run with the same id (a retried record) inserts nothing. The
    conflict target includes ``delivery_id``, the partition key on Postgres
    (:mod:`webhooks.history.partitions`)."""
    names = ["id", *_VALUE_COLUMNS]
    return (
        f"INSERT INTO attempts ({', '.join(names)}, stale) "
        f"VALUES ({', '.join(':' + name for name in names)}, {stale}) "
        "ON CONFLICT (id, delivery_id) DO NOTHING"
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
