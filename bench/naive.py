"""The work of a delivery done the quick in-house way: what the baselines (2) and (3) run.

Sign the body (Standard Webhooks HMAC-SHA256, straight from :mod:`hmac`), POST it, insert one
attempt row in its own transaction. The row is a real row of the engine's ``attempts`` table
(same columns, signature redacted the same way), so the database does the same work per
delivery as for the engine, minus everything the engine does on top: claiming, loading the
endpoint, decrypting its secret, updating the delivery, the retry bookkeeping.

- :func:`naive_delivery` is the naive Celery task's body: ``requests.post``, i.e. a new
  session and a new TCP connection per call, as such code usually is.
- :func:`plain_loop` is the hardware's ceiling for this work: no Celery, one keep-alive
  :class:`requests.Session` (``trust_env=False``), back to back in one process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import Engine, create_engine, insert

from webhooks.core.ids import new_id
from webhooks.models import Attempt

#: The baselines' signing secret (a benchmark constant, not a credential).
SECRET = "whsec_" + base64.b64encode(b"bench-baseline-secret-24b").decode()
_KEY = base64.b64decode(SECRET.removeprefix("whsec_"))


@cache
def database(url: str) -> Engine:
    """One engine per process (created lazily: in a prefork child, after the fork)."""
    return create_engine(url, pool_size=10, max_overflow=40, pool_pre_ping=True)


def signed_headers(event_id: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    mac = hmac.new(_KEY, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "User-Agent": "bench-naive/1",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }


def attempt_row(
    *,
    tenant_id: str,
    endpoint_id: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    started_at: datetime,
    duration_ms: int,
    response: requests.Response | None,
    error: str | None,
) -> dict[str, Any]:
    return {
        "id": new_id("att"),
        "tenant_id": tenant_id,
        "delivery_id": None,
        "endpoint_id": endpoint_id,
        "attempt": 1,
        "started_at": started_at,
        "duration_ms": duration_ms,
        "request_url": url,
        "request_headers": {**headers, "webhook-signature": "[redacted]"},
        "request_body": body.decode(),
        "response_status": None if response is None else response.status_code,
        "response_headers": None if response is None else dict(response.headers),
        "response_body": None if response is None else response.text[:65536],
        "error": error,
    }


def insert_attempt(engine: Engine, row: dict[str, Any]) -> None:
    """One row, one transaction, one commit."""
    with engine.begin() as connection:
        connection.execute(insert(Attempt), row)


def _post(
    poster: Any, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[requests.Response | None, str | None]:
    try:
        return poster.post(url, data=body, headers=headers, timeout=timeout), None
    except requests.Timeout:
        return None, "timeout"
    except requests.RequestException:
        return None, "connection"


def naive_delivery(
    database_url: str,
    event_id: str,
    url: str,
    body_text: str,
    tenant_id: str,
    endpoint_id: str,
    timeout: float = 10.0,
) -> None:
    """What a quick in-house delivery task does, start to finish."""
    job = (event_id, url, body_text, tenant_id, endpoint_id)
    _sign_post_record(requests, database(database_url), job, timeout)


def _sign_post_record(
    poster: Any, engine: Engine, job: tuple[str, str, str, str, str], timeout: float
) -> None:
    """Sign the body, POST it and insert the attempt row: the work both baselines do."""
    event_id, url, body_text, tenant_id, endpoint_id = job
    body = body_text.encode()
    headers = signed_headers(event_id, body)
    started_at = datetime.now(UTC)
    started = time.monotonic()
    response, error = _post(poster, url, body, headers, timeout)
    duration_ms = round((time.monotonic() - started) * 1000)
    row = attempt_row(
        tenant_id=tenant_id,
        endpoint_id=endpoint_id,
        url=url,
        headers=headers,
        body=body,
        started_at=started_at,
        duration_ms=duration_ms,
        response=response,
        error=error,
    )
    insert_attempt(engine, row)


def keepalive_session() -> requests.Session:
    """A pooled session with room for one connection per receiver host."""
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=128, pool_maxsize=16)
    session.mount("http://", adapter)
    return session


def plain_loop(
    database_url: str,
    jobs: Sequence[tuple[str, str, str, str, str]],
) -> None:
    """Baseline (3): ``(event_id, url, body, tenant_id, endpoint_id)`` jobs, back to back."""
    session = keepalive_session()
    engine = database(database_url)
    try:
        for job in jobs:
            _sign_post_record(session, engine, job, 10.0)
    finally:
        session.close()
