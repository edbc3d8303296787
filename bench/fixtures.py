"""Tenants, endpoints and payloads for the scenarios, made through the public models.

Each endpoint belongs to a tenant of its own and has a receiver host address of its own
(``127.0.0.<n>``), as a platform with many customers has: one event makes one delivery, the
engine's per-endpoint in-flight cap is not what a throughput figure measures, and every
client's per-host connection pools are used as in production.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.naive import SECRET
from bench.receiver import Receiver
from webhooks.core.ids import new_id

EVENT_TYPE = "traveller.updated"


@dataclass(frozen=True)
class Target:
    """One endpoint as a scenario addresses it."""

    uid: str
    tenant_id: str
    endpoint_id: str
    url: str

    @property
    def healthy(self) -> bool:
        """Whether the receiver answers it (``/ok/...``), as opposed to ``/hang/...``."""
        return self.url.split("/")[3] == "ok"


def make_targets(
    receiver: Receiver,
    prefix: str,
    count: int,
    *,
    path: Callable[[int], str] = lambda _: "ok",
    endpoints_per_tenant: int = 1,
    timeout_seconds: int = 10,
    retry_schedule: Callable[[int], list[int] | None] = lambda _: None,
    signing: str = "hmac",
) -> list[Target]:
    """``count`` tenants ``<prefix>-<i>`` with ``endpoints_per_tenant`` endpoints each,
    signing with ``signing`` (``hmac``, or ``ed25519`` with a key pair each)."""
    from webhooks.core.db import new_session
    from webhooks.models import Endpoint, Tenant
    from webhooks.outbound.signing import ED25519, generate_private_key

    targets = []
    with new_session() as session:
        for index in range(count):
            tenant = Tenant(uid=f"{prefix}-{index}", name=f"bench {prefix} {index}")
            session.add(tenant)
            session.flush()
            for _ in range(endpoints_per_tenant):
                url = receiver.url(index, path(index))
                endpoint = Endpoint(
                    tenant_id=tenant.id,
                    url=url,
                    secret=SECRET,
                    event_types=[],
                    retry_schedule=retry_schedule(index),
                    timeout_seconds=timeout_seconds,
                    signing=signing,
                    signing_key=generate_private_key() if signing == ED25519 else None,
                )
                session.add(endpoint)
                session.flush()
                targets.append(Target(tenant.uid, tenant.id, endpoint.id, url))
        session.commit()
    return targets


def sample_data(index: int) -> dict[str, Any]:
    """A payload of a realistic size (about 300 bytes of JSON)."""
    return {
        "uuid": f"25b4c1d2-{index:04x}-4e5f-8a9b-0c1d2e3f4a5b"[-36:],
        "name": f"Traveller {index}",
        "email": f"traveller{index}@example.com",
        "changes": {"phone": "+44 20 7946 0000", "passport_expiry": "2031-05-17"},
        "booking": {"id": f"bk_{index}", "status": "confirmed", "legs": 2},
        "seq": index,
    }


def envelope_body(event_id: str, index: int) -> str:
    """What the engine would send for this event: the baselines post the same bytes."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"id": event_id, "type": EVENT_TYPE, "timestamp": stamp, "data": sample_data(index)}
    return json.dumps(body, separators=(",", ":"))


def baseline_job(target: Target, index: int) -> tuple[str, str, str, str, str]:
    """The arguments of one naive delivery (task or plain loop) to ``target``."""
    event_id = new_id("evt")
    return (
        event_id,
        target.url,
        envelope_body(event_id, index),
        target.tenant_id,
        target.endpoint_id,
    )


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.02) -> float | None:
    """Poll until ``check()``; the monotonic time it first held, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def paced(count: int, rate: float) -> Sequence[float]:
    """Open-loop send times (offsets in seconds) for ``count`` sends at ``rate`` per second."""
    return [index / rate for index in range(count)]
