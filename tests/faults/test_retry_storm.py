"""The sweep is not starved by a storm of retries (its own queue, not expiring behind them).

A thousand retries to a hundred hanging endpoints fill the ``retries`` queue and keep every
greenlet of the worker busy for minutes; a delivery whose message was never published (the
broker was unreachable at enqueue) must still go out within 30 s of the worker starting,
which only a sweep run during the storm can do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from tests.e2e.broker import environment, queued
from tests.faults.harness import (
    RECOVERY_SECONDS,
    Receiver,
    add_endpoint,
    answer,
    report,
    start_beat,
    start_worker,
    statuses,
    stopwatch,
)
from tests.services import free_port, wait_until
from webhooks import enqueue_event
from webhooks.broker.publishing import RETRIES_QUEUE, DeliveryRef, publish
from webhooks.core import clock
from webhooks.core.ids import new_id
from webhooks.models import Delivery, Event, Tenant

pytestmark = pytest.mark.e2e

HANGING = 100
RETRIES_EACH = 10


def storm(session: Session, tenant: Tenant, receiver: Receiver) -> int:
    """Retries due now to endpoints that hang past their 1 s timeout, all published."""
    hang = receiver.on("/hang", answer(delay=5))
    now = clock.now()
    refs = []
    for _ in range(HANGING):
        endpoint_id = add_endpoint(
            session, tenant, hang, event_types=["storm.retry"], timeout_seconds=1
        )
        for _ in range(RETRIES_EACH):
            event_id, delivery_id = new_id("evt"), new_id("dlv")
            session.execute(
                insert(Event).values(
                    id=event_id, tenant_id=tenant.id, type="storm.retry", data={}, timestamp=now
                )
            )
            session.execute(
                insert(Delivery).values(
                    id=delivery_id, tenant_id=tenant.id, event_id=event_id,
                    endpoint_id=endpoint_id, status="retrying", attempts=1,
                    next_attempt_at=now, locked_until=now,
                )
            )  # fmt: skip
            refs.append(DeliveryRef(delivery_id, endpoint_id, "storm.retry", 1))
    session.commit()
    return publish(refs)


@pytest.mark.timeout(120)
def test_a_lost_delivery_goes_out_during_a_retry_storm(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    broker_url: str,
    tmp_path: Path,
) -> None:
    assert storm(session, tenant, receiver) == HANGING * RETRIES_EACH
    add_endpoint(session, tenant, receiver.on("/lost", answer()), event_types=["order.lost"])
    with environment(WEBHOOKS_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        lost = enqueue_event("order.lost", {}, tenant="acme")  # stored; its publish failed
    beat = start_beat(worker_env, tmp_path)
    worker = start_worker(worker_env, tmp_path / "worker.log")
    since_start = stopwatch()
    try:
        wait_until(lambda: receiver.count("/lost") == 1, 60, "the lost delivery to go out")
        seconds = since_start()
        still_queued = len(queued(broker_url, RETRIES_QUEUE))
        worker.check_alive()
    finally:
        worker.stop()
        beat.stop()
    report(
        "sweep during a retry storm",
        f"a lost delivery went out {seconds:.1f}s after the worker started, with "
        f"{still_queued} of {HANGING * RETRIES_EACH} hanging retries still queued",
    )
    assert statuses([lost]) == {"succeeded": 1}
    assert still_queued > HANGING * RETRIES_EACH // 2, "the storm was over: nothing was proved"
    assert seconds <= RECOVERY_SECONDS
