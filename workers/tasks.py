"""The tasks: thin adapters from Celery messages to :mod:`webhooks` functions."""

from __future__ import annotations

from typing import Any

from webhooks import broker, dead_letter, delivery, sweeper
from webhooks.transport import default_transport
from workers.app import task


@task(broker.DELIVER_TASK)
def deliver(delivery_id: str) -> None:
    """Make one attempt of a delivery and schedule what follows it."""
    step = delivery.process(delivery_id, default_transport())
    if step.delivery is None:
        return
    if step.rides_countdown:
        broker.publish([step.delivery], countdown=step.delay)
    elif step.action is delivery.Next.DEAD_LETTER:
        broker.publish_dead_letter(delivery_id)


@task(broker.DEAD_LETTER_TASK)
def dead_letter_task(delivery_id: str) -> dict[str, Any] | None:
    """Log, count and hand on a delivery that failed for good."""
    return dead_letter.handle(delivery_id)


@task(broker.SWEEP_TASK)
def sweep() -> int:
    """Publish what is due and missing from the broker."""
    return sweeper.sweep()
