"""Execution history: turning one request and its outcome into an attempt row."""

from datetime import datetime

from sqlalchemy.orm import Session

from webhooks.models import Attempt, Endpoint
from webhooks.outbound.outcome import Outcome
from webhooks.outbound.request import OutgoingRequest, redacted_headers

#: How much of a response body history keeps.
MAX_RESPONSE_BODY = 64 * 1024


def as_text(body: bytes, limit: int | None = None) -> str:
    """Bytes as storable text: invalid UTF-8 and NUL (which Postgres text refuses) replaced."""
    chunk = body if limit is None else body[:limit]
    return chunk.decode("utf-8", "replace").replace("\x00", "\ufffd")


def record_attempt(
    session: Session,
    *,
    endpoint: Endpoint,
    delivery_id: str | None,
    number: int,
    request: OutgoingRequest,
    outcome: Outcome,
    started_at: datetime,
) -> Attempt:
    """Add the attempt row for ``request`` (a PING when ``delivery_id`` is None)."""
    has_response = outcome.status is not None
    attempt = Attempt(
        tenant_id=endpoint.tenant_id,
        delivery_id=delivery_id,
        endpoint_id=endpoint.id,
        attempt=number,
        started_at=started_at,
        duration_ms=outcome.duration_ms,
        request_url=request.url,
        request_headers=redacted_headers(request, endpoint),
        request_body=as_text(request.body),
        response_status=outcome.status,
        response_headers=dict(outcome.headers) if has_response else None,
        response_body=as_text(outcome.body, MAX_RESPONSE_BODY) if has_response else None,
        error=outcome.error,
    )
    session.add(attempt)
    return attempt
