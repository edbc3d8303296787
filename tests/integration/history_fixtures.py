"""Building a known execution history directly in the database, at chosen times.

Rows get ids minted at their own time (ids are ULIDs: id order is time order), as the
engine would have made them then, so that time windows and keyset paging see them as real.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.core.ids import ulid
from webhooks.history import partitions
from webhooks.models import Attempt, Delivery, Endpoint, Event, Tenant

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def id_at(prefix: str, at: datetime) -> str:
    return f"{prefix}_{ulid(int(at.timestamp() * 1000))}"


def make_endpoint(session: Session, tenant: Tenant, url: str, **fields: Any) -> Endpoint:
    endpoint = Endpoint(tenant_id=tenant.id, url=url, secret=SECRET, **fields)
    session.add(endpoint)
    session.commit()
    return endpoint


def make_event(session: Session, tenant: Tenant, at: datetime | None = None) -> Event:
    at = at or clock.now()
    event = Event(
        id=id_at("evt", at),
        tenant_id=tenant.id,
        type="booking.created",
        data={"n": 1},
        timestamp=at,
        created_at=at,
    )
    session.add(event)
    session.flush()
    return event


def make_delivery(
    session: Session,
    endpoint: Endpoint,
    *,
    at: datetime | None = None,
    status: str = "succeeded",
    event: Event | None = None,
    attempts: int = 1,
) -> Delivery:
    """A delivery created at ``at`` (with its own event unless one is given)."""
    at = at or clock.now()
    tenant_id = endpoint.tenant_id
    if event is None:
        event = make_event(session, session.get_one(Tenant, tenant_id), at)
    is_open = status in ("pending", "retrying")
    delivery = Delivery(
        id=id_at("dlv", at),
        tenant_id=tenant_id,
        event_id=event.id,
        endpoint_id=endpoint.id,
        status=status,
        attempts=attempts,
        next_attempt_at=at if is_open else None,
        last_status_code=200 if status == "succeeded" else 500,
        created_at=at,
        updated_at=at,
    )
    session.add(delivery)
    session.flush()
    return delivery


def make_attempt(
    session: Session,
    endpoint: Endpoint,
    *,
    at: datetime,
    status: int | None = 200,
    error: str | None = None,
    duration_ms: int = 100,
    delivery: Delivery | None = None,
    number: int = 1,
) -> Attempt:
    """An attempt started at ``at``, recorded ``duration_ms`` later (in its delivery's
    partition on Postgres, created in the session's transaction if that day has none)."""
    if delivery is not None and partitions.is_partitioned(session.connection()):
        session.execute(text(partitions.Partition.of(delivery.id).create_sql()))
    attempt = Attempt(
        id=id_at("att", at + timedelta(milliseconds=duration_ms)),
        tenant_id=endpoint.tenant_id,
        delivery_id=None if delivery is None else delivery.id,
        endpoint_id=endpoint.id,
        attempt=number,
        started_at=at,
        duration_ms=duration_ms,
        request_url=endpoint.url,
        request_headers={"Content-Type": "application/json", "webhook-signature": "[redacted]"},
        request_body='{"n": 1}',
        response_status=status,
        response_headers=None if status is None else {"Content-Type": "text/plain"},
        response_body=None if status is None else f"answer {status}",
        error=error,
    )
    session.add(attempt)
    session.flush()
    return attempt
