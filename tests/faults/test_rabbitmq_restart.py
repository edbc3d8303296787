"""RabbitMQ restarted mid-burst: durable queues survive, publishes made while it was down
are lost, and once it is back every open delivery goes out within 30 s.

The node is a throwaway of its own (``tests.services.ThrowawayRabbitMQ``), next to the shared
one; the worker, beat and the producer (this process) are left running through the restart.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.e2e.broker import environment
from tests.faults.harness import (
    RECOVERY_CONCURRENCY,
    Burst,
    Receiver,
    enqueue_spread,
    in_flight,
    recovered,
    report,
    spread_endpoints,
    start_beat,
    start_worker,
    statuses,
    stopwatch,
)
from tests.services import ThrowawayRabbitMQ, wait_until
from webhooks.models import Tenant

pytestmark = pytest.mark.e2e

BURST = 200


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[ThrowawayRabbitMQ]:
    node = ThrowawayRabbitMQ()
    try:
        with environment(WEBHOOKS_BROKER_URL=node.url):
            yield node
    finally:
        node.destroy()


@pytest.mark.timeout(240)
def test_rabbitmq_restarted_mid_burst(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    rabbitmq: ThrowawayRabbitMQ,
    tmp_path: Path,
) -> None:
    env = {**os.environ, "WEBHOOKS_BROKER_URL": rabbitmq.url}
    spread_endpoints(session, tenant, receiver)
    beat = start_beat(env, tmp_path)
    worker = start_worker(env, tmp_path / "worker.log", RECOVERY_CONCURRENCY)
    try:
        burst = Burst(enqueue_spread, BURST)
        wait_until(lambda: receiver.count() >= BURST // 5, 60, "the first sends")
        rabbitmq.stop()
        since_stop = stopwatch()
        flying = in_flight()
        event_ids = burst.join()  # stored all the same: a failed publish is the sweeper's
        left = BURST - statuses(event_ids)["succeeded"]
        start_seconds = rabbitmq.start()
        back_after = since_stop()
        outcome = recovered(
            "RabbitMQ restarted mid-burst",
            receiver,
            event_ids,
            open_at_fault=left,
            flying=flying,
            since_back=stopwatch(),
        )
        worker.check_alive()
        beat.check_alive()
    finally:
        worker.stop()
        beat.stop()
    assert left > 0
    report("RabbitMQ node start", f"{start_seconds:.1f}s (down {back_after:.1f}s in all)")
    outcome.check(back_after_fault=back_after, claims_died=False)
