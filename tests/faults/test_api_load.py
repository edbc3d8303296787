"""The API under concurrent load: no 5xx, and every accepted event is in the database."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.faults.harness import Receiver, report, start_api
from webhooks.admin.tokens import create_token
from webhooks.core.db import new_session
from webhooks.models import Delivery, Event, Tenant

pytestmark = pytest.mark.e2e

CLIENTS = 50
SECONDS = 30.0
ENDPOINT_EVERY = 25
"""Each client creates an endpoint on its first request and every this many after."""


@dataclass
class Tally:
    """What the clients got, merged under a lock."""

    statuses: dict[int, int] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)  # event id -> deliveries
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(number: int, base: str, token: str, hook: str, until: float, tally: Tally) -> None:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    event_type = f"load.client{number}"
    sent = 0
    while time.monotonic() < until:
        if sent % ENDPOINT_EVERY == 0:
            path, body = "endpoints", {"url": hook, "verify": False, "event_types": [event_type]}
        else:
            path, body = "events", {"type": event_type, "data": {"client": number, "n": sent}}
        started = time.monotonic()
        try:
            answer = http.post(f"{base}/v1/tenants/acme/{path}", json=body, timeout=30)
        except requests.RequestException as exc:
            with tally.lock:
                tally.failures.append(f"{path}: {exc}")
            continue
        finally:
            sent += 1
        with tally.lock:
            tally.latencies.append(time.monotonic() - started)
            tally.statuses[answer.status_code] = tally.statuses.get(answer.status_code, 0) + 1
            if answer.status_code >= 500:
                tally.failures.append(f"{path}: {answer.status_code} {answer.text[:300]}")
            elif path == "events" and answer.status_code == 202:
                tally.accepted[answer.json()["id"]] = answer.json()["deliveries"]
    http.close()


@pytest.mark.timeout(180)
def test_api_under_concurrent_load(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    _, token = create_token(session, tenant=tenant, scopes=["endpoints:write", "events:write"])
    session.commit()
    api = start_api(worker_env, tmp_path / "api.log", workers=2, threads=8)
    tally = Tally()
    try:
        until = time.monotonic() + SECONDS
        threads = [
            threading.Thread(
                target=client, args=(n, api.url, token, receiver.url("/hook"), until, tally)
            )
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SECONDS + 60)
        assert not any(thread.is_alive() for thread in threads)
        api.check_alive()
    finally:
        api.stop()
    assert tally.failures == [], tally.failures[:5]
    assert set(tally.statuses) <= {201, 202}, tally.statuses
    ids = list(tally.accepted)
    with new_session() as check:
        stored = check.scalar(select(func.count()).where(Event.id.in_(ids)))
        deliveries = check.scalar(select(func.count()).where(Delivery.event_id.in_(ids)))
    assert stored == len(ids), "an accepted event is missing from the database"
    assert deliveries == sum(tally.accepted.values())
    total = sum(tally.statuses.values())
    latencies = sorted(tally.latencies)
    report(
        "API under load",
        f"{CLIENTS} clients for {SECONDS:.0f}s: {total} requests ({total / SECONDS:.0f}/s), "
        f"{tally.statuses.get(201, 0)} endpoints and {len(ids)} events created, 0 5xx, "
        f"{len(ids)} of {len(ids)} accepted events stored with their {deliveries} deliveries; "
        f"latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms",
    )
