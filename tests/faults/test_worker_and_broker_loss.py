"""A worker killed with ``kill -9`` and a broker that forgets everything, mid-burst.

Neither may lose a delivery: the database is the record of what is
due, the claim keeps redelivered messages from sending twice where it can, and the sweeper
publishes again whatever the broker lost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.e2e.broker import flush
from tests.faults.harness import (
    REPUBLISH_AFTER_SECONDS,
    SLOW,
    SWEEP_INTERVAL_SECONDS,
    Burst,
    Receiver,
    add_endpoint,
    all_succeeded,
    answer,
    report,
    start_beat,
    start_worker,
    statuses,
    stopwatch,
)
from tests.services import wait_until
from webhooks import enqueue_event
from webhooks.models import Tenant

pytestmark = pytest.mark.e2e

BURST = 500
FLUSHED = 200


def enqueue(number: int) -> str:
    return enqueue_event("order.created", {"number": number}, tenant="acme")


@pytest.mark.timeout(240)
def recover_with_a_new_worker(
    worker_env: dict[str, str],
    tmp_path: Path,
    event_ids: list[str],
    since_fault: Callable[[], float],
) -> float:
    """Start a fresh worker, wait until every delivery succeeded; seconds since the fault."""
    second = start_worker(worker_env, tmp_path / "worker-2.log")
    try:
        wait_until(all_succeeded(event_ids, len(event_ids)), 120, "every delivery to succeed")
        return since_fault()
    finally:
        second.stop()


def test_kill_9_of_a_worker_mid_burst_loses_nothing(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    add_endpoint(session, tenant, receiver.on("/orders", answer(delay=SLOW)))
    beat = start_beat(worker_env, tmp_path)
    first = start_worker(worker_env, tmp_path / "worker-1.log")
    try:
        burst = Burst(enqueue, BURST)
        wait_until(lambda: receiver.count() >= BURST // 4, 60, "a quarter of the burst sent")
        first.kill()
        killed_at = stopwatch()
        sent_before_kill = receiver.count()
        event_ids = burst.join()
        assert len(event_ids) == BURST
        left = BURST - statuses(event_ids)["succeeded"]
        recovered_in = recover_with_a_new_worker(worker_env, tmp_path, event_ids, killed_at)
    finally:
        first.kill()
        beat.stop()
    counts = receiver.per_webhook_id()
    assert set(counts) == set(event_ids), "an event never reached the receiver"
    duplicates = {webhook_id: n for webhook_id, n in counts.items() if n > 1}
    extra = sum(duplicates.values()) - len(duplicates)
    assert statuses(event_ids) == {"succeeded": BURST}
    report(
        "kill -9 mid-burst",
        f"{BURST} events, worker killed after {sent_before_kill} sends with {left} deliveries "
        f"open; all {BURST} succeeded {recovered_in:.1f}s after the kill; "
        f"{len(duplicates)} webhook-ids sent twice or more ({extra} "
        f"extra sends, max {max(duplicates.values(), default=1)} per id)",
    )


@pytest.mark.timeout(240)
def test_flushed_broker_is_recovered_by_the_sweeper(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    broker_url: str,
    tmp_path: Path,
) -> None:
    add_endpoint(session, tenant, receiver.on("/orders", answer(delay=SLOW)))
    beat = start_beat(worker_env, tmp_path)
    first = start_worker(worker_env, tmp_path / "worker-1.log")
    try:
        event_ids = [enqueue(number) for number in range(FLUSHED)]
        wait_until(lambda: receiver.count() >= 40, 60, "the first sends")
        flush(broker_url)  # FLUSHDB: every queued and unacknowledged message is gone
        flushed_at = stopwatch()
        open_at_flush = FLUSHED - statuses(event_ids)["succeeded"]
        first.stop()
        recovered_in = recover_with_a_new_worker(worker_env, tmp_path, event_ids, flushed_at)
    finally:
        first.kill()
        beat.stop()
    assert open_at_flush > 0
    assert set(receiver.per_webhook_id()) == set(event_ids)
    duplicates = sum(n - 1 for n in receiver.per_webhook_id().values())
    report(
        "Redis FLUSHDB mid-burst",
        f"{FLUSHED} events, {open_at_flush} deliveries open at the flush; all succeeded "
        f"{recovered_in:.1f}s after it (republish window {REPUBLISH_AFTER_SECONDS}s, "
        f"sweep every {SWEEP_INTERVAL_SECONDS}s); {duplicates} extra sends",
    )
