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
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.e2e.broker import environment, flush
from tests.faults.harness import (
    RECOVERY_CONCURRENCY,
    Burst,
    Receiver,
    database_now,
    enqueue_one,
    enqueue_spread,
    in_flight,
    one_endpoint,
    recovered,
    report,
    sends_after,
    spread_endpoints,
    start_beat,
    start_worker,
    statuses,
    stopwatch,
)
from tests.services import ThrowawayRedis, wait_until
from webhooks.core.config import get_settings
from webhooks.models import Tenant

pytestmark = pytest.mark.e2e

BURST = 500
FLUSHED = 400
RESTARTED = 300


def open_deliveries(event_ids: list[str], total: int) -> int:
    return total - statuses(event_ids)["succeeded"]


DOWNTIME = 1.0
"""Seconds between the ``kill -9`` and the start of a new worker."""


def kill_mid_burst(
    fault: str,
    enqueue: Callable[[int], str],
    strike: Callable[[Receiver], bool],
    *,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Send a burst of :data:`BURST` events, ``kill -9`` every worker once ``strike`` says
    so, start a new one :data:`DOWNTIME` later; check the recovery and print its timeline
    (when the dead claims' leases end, when the new worker's attempts started, how many
    deliveries it deferred behind the endpoints' in-flight cap)."""
    beat = start_beat(worker_env, tmp_path)
    first = start_worker(worker_env, tmp_path / "worker-1.log", RECOVERY_CONCURRENCY)
    try:
        burst = Burst(enqueue, BURST)
        wait_until(lambda: strike(receiver), 60, "the moment to strike")
        first.kill()  # the whole process group: no worker is left
        since_kill = stopwatch()
        flying = in_flight()
        time.sleep(max(0.0, DOWNTIME - since_kill()))  # the outage itself, no condition
        second = start_worker(worker_env, tmp_path / "worker-2.log", RECOVERY_CONCURRENCY)
        back_after = since_kill()
        since_back = stopwatch()
        ready = database_now()
        try:
            event_ids = burst.join()
            left = open_deliveries(event_ids, BURST)
            outcome = recovered(
                fault,
                receiver,
                event_ids,
                open_at_fault=left,
                flying=flying,
                since_back=since_back,
            )
            deferred = second.log.read_text(errors="replace").count("at its in-flight cap")
            report(
                f"{fault}, timeline",
                f"the dead claims' leases ended by {flying.lease_left - back_after:.1f}s after "
                f"the new worker was ready; {sends_after(event_ids, ready)} it; "
                f"{deferred} deferrals behind the cap by the new worker",
            )
        finally:
            second.stop()
    finally:
        first.kill()
        beat.stop()
    assert left > 0 and flying.count > 0
    outcome.check(back_after_fault=back_after, claims_died=True)


@pytest.mark.timeout(240)
def test_kill_9_of_the_worker_mid_burst(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    spread_endpoints(session, tenant, receiver)
    kill_mid_burst(
        "kill -9 mid-burst",
        enqueue_spread,
        lambda sent: sent.count() >= BURST // 4,
        receiver=receiver,
        worker_env=worker_env,
        tmp_path=tmp_path,
    )


@pytest.mark.timeout(240)
def test_kill_9_of_the_worker_mid_burst_to_one_endpoint(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The killed worker's claims hold all of the endpoint's cap until their leases end,
    and the rest of the burst is deferred behind it meanwhile: once the slots are free
    again, the backlog must drain at the endpoint's pace, within the promise."""
    one_endpoint(session, tenant, receiver)
    cap = get_settings().endpoint_concurrency
    kill_mid_burst(
        "kill -9 mid-burst to one endpoint",
        enqueue_one,
        lambda sent: sent.count() >= BURST // 3 and in_flight().count >= cap,
        receiver=receiver,
        worker_env=worker_env,
        tmp_path=tmp_path,
    )


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
