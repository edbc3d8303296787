"""A worker killed with ``kill -9``, a broker that forgets everything, a Redis restarted empty.

None may lose a delivery, and once a worker runs again everything open goes out within 30 s
at the default settings: the database is the record of what is due,
the claim keeps redelivered messages from sending twice, and the sweeper publishes again what
the broker no longer holds. Most tests spread their burst over a few endpoints
(:func:`~tests.faults.harness.spread_endpoints`) so that the in-flight cap does not pace it;
one sends a whole burst to one endpoint, whose cap the killed worker's claims hold until
their leases end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.e2e.broker import environment, flush
from tests.faults.harness import (
    RECOVERY_CONCURRENCY,
    Burst,
    Receiver,
    enqueue_spread,
    in_flight,
    recovered,
    spread_endpoints,
    start_beat,
    start_worker,
    statuses,
    stopwatch,
)
from tests.services import ThrowawayRedis, wait_until
from webhooks.models import Tenant

pytestmark = pytest.mark.e2e

BURST = 500
FLUSHED = 400
RESTARTED = 300


def open_deliveries(event_ids: list[str], total: int) -> int:
    return total - statuses(event_ids)["succeeded"]


@pytest.mark.timeout(240)
def test_kill_9_of_the_worker_mid_burst(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    spread_endpoints(session, tenant, receiver)
    beat = start_beat(worker_env, tmp_path)
    first = start_worker(worker_env, tmp_path / "worker-1.log", RECOVERY_CONCURRENCY)
    try:
        burst = Burst(enqueue_spread, BURST)
        wait_until(lambda: receiver.count() >= BURST // 4, 60, "a quarter of the burst sent")
        first.kill()  # the whole process group: no worker is left
        since_kill = stopwatch()
        flying = in_flight()
        event_ids = burst.join()
        left = open_deliveries(event_ids, BURST)
        second = start_worker(worker_env, tmp_path / "worker-2.log", RECOVERY_CONCURRENCY)
        back_after = since_kill()
        try:
            outcome = recovered(
                "kill -9 mid-burst",
                receiver,
                event_ids,
                open_at_fault=left,
                flying=flying,
                since_back=stopwatch(),
            )
        finally:
            second.stop()
    finally:
        first.kill()
        beat.stop()
    outcome.check(back_after_fault=back_after, claims_died=True)


def test_broker_flushed_mid_burst(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    broker_url: str,
    tmp_path: Path,
) -> None:
    spread_endpoints(session, tenant, receiver)
    beat = start_beat(worker_env, tmp_path)
    worker = start_worker(worker_env, tmp_path / "worker.log", RECOVERY_CONCURRENCY)
    try:
        event_ids = [enqueue_spread(number) for number in range(FLUSHED)]
        wait_until(lambda: receiver.count() >= FLUSHED // 10, 60, "the first sends")
        flush(broker_url)  # FLUSHDB: every queued and unacknowledged message is gone
        since_flush = stopwatch()
        flying = in_flight()
        left = open_deliveries(event_ids, FLUSHED)
        # The worker kept running: it is "back" at once.
        outcome = recovered(
            "Redis FLUSHDB mid-burst",
            receiver,
            event_ids,
            open_at_fault=left,
            flying=flying,
            since_back=since_flush,
        )
        worker.check_alive()
    finally:
        worker.stop()
        beat.stop()
    assert left > 0
    outcome.check(back_after_fault=0.0, claims_died=False)


@pytest.fixture
def restartable_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    try:
        with environment(WEBHOOKS_BROKER_URL=server.url):
            yield server
    finally:
        server.destroy()


@pytest.mark.timeout(180)
def test_redis_restarted_without_persistence_mid_burst(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    restartable_redis: ThrowawayRedis,
    tmp_path: Path,
) -> None:
    env = {**os.environ, "WEBHOOKS_BROKER_URL": restartable_redis.url}
    spread_endpoints(session, tenant, receiver)
    beat = start_beat(env, tmp_path)
    worker = start_worker(env, tmp_path / "worker.log", RECOVERY_CONCURRENCY)
    try:
        burst = Burst(enqueue_spread, RESTARTED)
        wait_until(lambda: receiver.count() >= RESTARTED // 5, 60, "the first sends")
        restartable_redis.stop()  # every message gone; producers, worker and beat see errors
        since_stop = stopwatch()
        flying = in_flight()
        enqueued_at_stop = len(burst.event_ids)
        wait_until(
            lambda: len(burst.event_ids) >= enqueued_at_stop + 10,
            60,
            "events enqueued while Redis is down (stored; their publish failed)",
        )
        restartable_redis.start()  # empty: no persistence
        back_after = since_stop()
        since_back = stopwatch()
        event_ids = burst.join()
        left = open_deliveries(event_ids, RESTARTED)
        outcome = recovered(
            "Redis restarted without persistence mid-burst",
            receiver,
            event_ids,
            open_at_fault=left,
            flying=flying,
            since_back=since_back,
        )
        worker.check_alive()
        beat.check_alive()
    finally:
        worker.stop()
        beat.stop()
    assert left > 0
    outcome.check(back_after_fault=back_after, claims_died=False)
