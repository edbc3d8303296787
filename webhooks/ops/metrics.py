"""Prometheus metrics: what happened (counters, in the process it happened in) and what is
waiting (gauges, read from the database and the broker when scraped).

Counters live in the process that counts them: the API's gunicorn workers (events ingested
through the API), the Celery worker (attempts, outcomes, dead letters), producers calling
:func:`webhooks.enqueue_event`. Several processes per host are the rule (gunicorn workers,
prefork children), so the metrics run in prometheus-client's *multiprocess mode* when
``PROMETHEUS_MULTIPROC_DIR`` names a directory (set before the process starts; emptied when
the host's services start): each process writes its values to a memory-mapped file there and
a scrape sums the directory. Only counters and histograms are kept per process, never a
process-local gauge, so a process that exits needs no cleanup: its counts stay in the sum,
as counts should. Without the variable each process counts in memory, which is right for a
single process (``webhooks dev``, tests).

Workers on hosts with no API process expose the same sums on a port of their own
(``WEBHOOKS_METRICS_PORT``, see :func:`start_exporter`).

Labels are low-cardinality on purpose (outcome, status class, queue): no tenant or endpoint
label, whose values are unbounded; per-endpoint numbers are in the API's ``/stats``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from webhooks.broker.inspection import queue_depths
from webhooks.broker.publishing import (
    DEAD_LETTER_QUEUE,
    DELIVERIES_QUEUE,
    RETRIES_QUEUE,
    SWEEP_QUEUE,
)
from webhooks.core import clock
from webhooks.core.db import get_engine
from webhooks.models import OPEN_STATUSES, Delivery
from webhooks.ops.readiness import BUDGET, CheckFailed, bounded

if TYPE_CHECKING:  # the producer side imports this module: keep requests out of it
    from webhooks.outbound.outcome import Outcome

log = logging.getLogger("webhooks.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUEUES = (DELIVERIES_QUEUE, RETRIES_QUEUE, DEAD_LETTER_QUEUE, SWEEP_QUEUE)

EVENTS_INGESTED = Counter(
    "webhooks_events_ingested", "Events accepted (stored with their deliveries)"
)
DELIVERIES_ENQUEUED = Counter(
    "webhooks_deliveries_enqueued", "Deliveries created by accepted events (one per endpoint)"
)
DELIVERIES = Counter(
    "webhooks_deliveries",
    "Attempts by what they made of their delivery: succeeded, retrying or failed (for good)",
    ["outcome"],
)
ATTEMPTS = Counter(
    "webhooks_attempts",
    "Attempts by status class (2xx..5xx) or error (timeout, connection, tls, redirect, ...)",
    ["status_class"],
)
DEAD_LETTERS = Counter("webhooks_dead_letters", "Deliveries that failed after their last attempt")
CIRCUITS_OPENED = Counter(
    "webhooks_circuits_opened", "Times an endpoint's circuit opened after failures in a row"
)
CIRCUITS_CLOSED = Counter(
    "webhooks_circuits_closed", "Times an endpoint's open circuit closed again on a success"
)
ATTEMPT_DURATION = Histogram(
    "webhooks_attempt_duration_seconds",
    "Time from sending an attempt to its response, or to its error",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0),
)

__all__ = [
    "ATTEMPTS",
    "ATTEMPT_DURATION",
    "CIRCUITS_CLOSED",
    "CIRCUITS_OPENED",
    "DEAD_LETTERS",
    "DELIVERIES",
    "EVENTS_INGESTED",
    "attempt_made",
    "circuit_closed",
    "circuit_opened",
    "event_ingested",
    "exposition",
    "start_exporter",
]


def event_ingested(n_deliveries: int) -> None:
    """One event stored with ``n_deliveries`` deliveries (call once per *new* event)."""
    EVENTS_INGESTED.inc()
    if n_deliveries:
        DELIVERIES_ENQUEUED.inc(n_deliveries)


def status_class(outcome: Outcome) -> str:
    """``2xx``.. ``5xx`` for a response, else the error (``timeout``, ``connection``, ...)."""
    if outcome.error is not None:
        return outcome.error
    if outcome.status is None:
        return "unknown"
    return f"{outcome.status // 100}xx"


def attempt_made(outcome: Outcome, delivery_outcome: str) -> None:
    """Count one attempt; ``delivery_outcome`` is succeeded, retrying or failed."""
    ATTEMPTS.labels(status_class=status_class(outcome)).inc()
    ATTEMPT_DURATION.observe(outcome.duration_ms / 1000)
    DELIVERIES.labels(outcome=delivery_outcome).inc()


def circuit_opened() -> None:
    CIRCUITS_OPENED.inc()


def circuit_closed() -> None:
    CIRCUITS_CLOSED.inc()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_registry() -> CollectorRegistry:
    """What this host's processes counted: the directory's sum, or this process's own."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class BacklogCollector(Collector):
    """Gauges read when scraped: open and due deliveries, broker queue depths.

    Each source has :data:`webhooks.ops.readiness.BUDGET` to answer; one that does not is
    reported by ``webhooks_database_up`` / ``webhooks_broker_up`` 0 and its gauges are left
    out of the scrape (an absent series, not a made-up zero).
    """

    def collect(self) -> Iterator[Metric]:
        database_up = GaugeMetricFamily(
            "webhooks_database_up", "Whether the database answered this scrape"
        )
        try:
            due, open_ = bounded(lambda: _delivery_counts(clock.now()))
        except CheckFailed as exc:
            log.warning("metrics: database did not answer: %s", exc)
            database_up.add_metric([], 0)
        else:
            database_up.add_metric([], 1)
            yield GaugeMetricFamily(
                "webhooks_due_retry_backlog",
                "Open deliveries due now or overdue: waiting for a worker",
                value=due,
            )
            yield GaugeMetricFamily(
                "webhooks_deliveries_open", "Deliveries pending or retrying", value=open_
            )
        yield database_up

        broker_up = GaugeMetricFamily("webhooks_broker_up", "Whether the broker answered")
        try:
            depths = bounded(lambda: queue_depths(QUEUES, BUDGET))
        except CheckFailed as exc:
            log.warning("metrics: broker did not answer: %s", exc)
            broker_up.add_metric([], 0)
        else:
            broker_up.add_metric([], 1)
            depth = GaugeMetricFamily(
                "webhooks_broker_queue_depth",
                "Messages ready in each broker queue (not those held by workers)",
                labels=["queue"],
            )
            for queue, count in depths.items():
                depth.add_metric([queue], count)
            yield depth
        yield broker_up


def _delivery_counts(now: datetime) -> tuple[int, int]:
    """Due and open deliveries; both read the partial index of open deliveries."""
    open_filter = Delivery.status.in_(OPEN_STATUSES)
    with get_engine().connect() as connection:
        row = connection.execute(
            select(
                func.count().filter(Delivery.next_attempt_at <= now),
                func.count(),
            ).where(open_filter)
        ).one()
    return int(row[0]), int(row[1])


def exposition(include_backlog: bool = True) -> bytes:
    """The text to answer a scrape with: counted values, then (API only) the backlog."""
    output = generate_latest(process_registry())
    if include_backlog:
        output += generate_latest(BacklogCollector())
    return output


def start_exporter(port: int, host: str = "127.0.0.1") -> None:
    """Serve this host's counted metrics on ``host:port`` (a worker with no API beside it).

    Loopback by default (``WEBHOOKS_METRICS_HOST`` opens it): the series name every tenant's
    endpoints, which is no business of whoever else can reach the worker's host. The backlog
    gauges are left to the API's ``/metrics``: they describe the whole system, and every
    worker host reporting them would only multiply the same series.
    """
    start_http_server(port, addr=host, registry=process_registry())
    log.info("metrics exporter listening on %s:%d", host, port)
