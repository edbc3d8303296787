"""The tasks: thin adapters from Celery messages to :mod:`webhooks` functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy.exc import OperationalError

from webhooks.broker import publishing as broker
from webhooks.core.errors import DatabaseUnavailable
from webhooks.delivery import dead_letter, engine, redelivery, sweeper
from webhooks.delivery.state import Next, NextStep
from webhooks.history import partitions, retention, rollup
from webhooks.ops import metrics
from webhooks.outbound.client_tls import ClientCertificate
from webhooks.outbound.http import Transport, default_transport
from webhooks.outbound.outcome import Outcome
from workers.app import task


class _Metered:
    """The process's transport, remembering the outcome of the one attempt it carries.

    One per task run: the engine returns what happens next, not the attempt's outcome, so the
    outcome is taken on its way through, and the counts stay out of the engine.
    """

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.outcome: Outcome | None = None

    def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
        *,
        client_certificate: ClientCertificate | None = None,
    ) -> Outcome:
        self.outcome = self.inner.post(
            url, headers, body, timeout, client_certificate=client_certificate
        )
        return self.outcome

    def unsent(self, outcome: Outcome) -> Outcome:
        self.outcome = self.inner.unsent(outcome)
        return self.outcome


def _count(outcome: Outcome | None, step: NextStep) -> None:
    if outcome is None:
        return  # no attempt: a duplicate message, a parked or deferred delivery
    if outcome.ok:
        result = "succeeded"
    elif step.action is Next.DEAD_LETTER:
        result = "failed"
    else:
        result = "retrying"
    metrics.attempt_made(outcome, result)


@task(
    broker.DELIVER_TASK,
    # The database is down: try again in seconds rather than wait for the sweeper's window.
    autoretry_for=(OperationalError, DatabaseUnavailable),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=None,
)
def deliver(delivery_id: str) -> None:
    """Make one attempt of a delivery and schedule what follows it."""
    transport = _Metered(default_transport())
    step = engine.process(delivery_id, cast(Transport, transport))
    _count(transport.outcome, step)
    if step.delivery is None:
        return
    if step.rides_countdown:
        broker.publish([step.delivery], countdown=step.delay)
    elif step.action is Next.DEAD_LETTER:
        broker.publish_dead_letter(delivery_id)


@task(broker.DEAD_LETTER_TASK)
def dead_letter_task(delivery_id: str) -> dict[str, Any] | None:
    """Log, count and hand on a delivery that failed for good."""
    return dead_letter.handle(delivery_id)


@task(broker.SWEEP_TASK)
def sweep() -> int:
    """Publish what is due and missing from the broker."""
    return sweeper.sweep()


@task(redelivery.RECOVER_TASK)
def recover(endpoint_id: str, since: str, until: str) -> int:
    """Redeliver an endpoint's failed deliveries of a window, in batches."""
    return redelivery.recover_batches(redelivery.Recovery.from_args(endpoint_id, since, until))


@task(partitions.PARTITIONS_TASK)
def create_partitions() -> int:
    """Create the partitions of attempts for the days ahead (Postgres)."""
    return partitions.ensure_ahead()


@task(retention.PURGE_TASK)
def purge() -> int:
    """Delete the history older than the retention, in small batches."""
    return retention.purge().total


@task(rollup.ROLL_UP_TASK)
def roll_up() -> int:
    """Roll up the attempts of the hours that have settled (the console's charts, stats)."""
    return rollup.roll_up()
