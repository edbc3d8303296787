"""The Celery app the workers and beat run: ``celery -A workers worker|beat|flower``.

It is the library's own app (:func:`webhooks.broker.celery_app`), so tasks published by the
library and by the workers share one configuration and one connection pool; here it gets what
only consumers need. A plain ``celery -A workers worker`` consumes every queue (``-Q`` splits
them across pools).

The production pool is gevent with a high concurrency (``-P gevent -c 1000``, one process per
core): a delivery waits on the network, not the CPU. Under gevent, psycopg2 would block the
whole process on every query, so its wait callback is replaced by psycogreen's as the worker
starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

from celery import signals

from webhooks.broker.publishing import RETRIES_QUEUE, SWEEP_TASK, celery_app
from webhooks.core.config import get_settings
from webhooks.core.logs import configure_logging
from webhooks.history.partitions import PARTITIONS_TASK
from webhooks.history.retention import PURGE_TASK
from webhooks.history.rollup import ROLL_UP_TASK
from webhooks.ops import metrics
from workers.events import batch_task_events

F = TypeVar("F", bound=Callable[..., Any])

SWEEP_INTERVAL = get_settings().sweep_interval_seconds
"""Seconds between sweeps (:mod:`webhooks.delivery.sweeper`): how late a long retry goes out."""

SWEEP_EXPIRES = 60.0
"""Seconds a sweep may wait for a worker. It has a queue of its own, so it waits only for a
free slot, never behind deliveries or retries; one still queued a minute later had no worker
to run it, and the sweeps beat sent since cover it (without the expiry a worker coming back
after hours would first run every one of them)."""

PURGE_INTERVAL = 3600.0
"""Seconds between retention purges (:mod:`webhooks.history.retention`)."""

PARTITIONS_INTERVAL = 3600.0
"""Seconds between runs that create the partitions of attempts for the days ahead
(:mod:`webhooks.history.partitions`): hourly, so a day missed by a stopped beat is soon made
up, and a no-op (one catalog query) when they exist."""

ROLL_UP_INTERVAL = 300.0
"""Seconds between roll-ups of settled hours (:mod:`webhooks.history.rollup`): an hour is
rolled up within this of settling, before readers would have to do it themselves."""

app = celery_app()
app.conf.update(
    # A task is acknowledged once done, and given back if its worker dies mid-way: a delivery
    # message is never lost to a crash (the claim keeps the redelivery from sending twice).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # Each worker reserves little beyond what it runs, so a busy worker does not sit on
    # messages an idle one could take.
    worker_prefetch_multiplier=1,
    # After a reconnect (a broker restart) Celery would lower the prefetch by the tasks still
    # running and raise it again step by step as tasks finish. On a gevent worker that step
    # fails (``basic.qos`` sent from a task's greenlet while the consumer reads the socket:
    # seen in the RabbitMQ restart test's log), so a worker that had most of its greenlets
    # busy at the reconnect would stay at a fraction of its prefetch. Prefetching fully at
    # once takes at most one pool's worth of messages more for a moment; the claim makes a
    # copy of a running task harmless.
    worker_enable_prefetch_count_reduction=False,
    # Task events, for Flower (received, started, succeeded, failed...), in batches also on
    # gevent (workers.events). Not the "sent" event: it doubled the Redis writes of every
    # publish, and only in the processes that imported this module (a producer or the API
    # never did), so Flower never had it for first attempts anyway.
    worker_send_task_events=True,
    beat_schedule={
        "sweep": {
            "task": SWEEP_TASK,
            "schedule": SWEEP_INTERVAL,
            "options": {"expires": max(SWEEP_EXPIRES, SWEEP_INTERVAL)},
        },
        # History retention (webhooks.history.retention): hourly, in small batches.
        "purge": {
            "task": PURGE_TASK,
            "schedule": PURGE_INTERVAL,
            "options": {"queue": RETRIES_QUEUE, "expires": PURGE_INTERVAL},
        },
        "partitions": {
            "task": PARTITIONS_TASK,
            "schedule": PARTITIONS_INTERVAL,
            "options": {"queue": RETRIES_QUEUE, "expires": PARTITIONS_INTERVAL},
        },
        # Hourly rollup of attempts (webhooks.history.rollup): each settled hour once.
        "roll-up": {
            "task": ROLL_UP_TASK,
            "schedule": ROLL_UP_INTERVAL,
            "options": {"queue": RETRIES_QUEUE, "expires": ROLL_UP_INTERVAL},
        },
    },
)

batch_task_events(app)


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def _green_psycopg(**_: Any) -> None:
    """Make psycopg2 yield to other greenlets while it waits, when the pool is gevent.

    Celery monkey-patches for ``-P gevent`` before it imports this app, whatever spelling of
    the option was used; checking the patch itself rather than the option covers them all.
    """
    if _gevent_patched():
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


signals.worker_init.connect(_green_psycopg)


def _logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Worker and beat log through :mod:`webhooks.core.logs` (text or JSON), not Celery's format.

    Connecting to ``setup_logging`` tells Celery to leave logging alone; ``--loglevel`` still
    applies.
    """
    configure_logging(get_settings(), loglevel or "INFO")


signals.setup_logging.connect(_logging)


def _metrics_exporter(**_: Any) -> None:
    """Serve this host's worker metrics on ``WEBHOOKS_METRICS_HOST:WEBHOOKS_METRICS_PORT``,
    when the port is set.

    In the worker's main process, once: a gevent or threads pool counts there, and a prefork
    pool's children write to ``PROMETHEUS_MULTIPROC_DIR``, which the exporter sums.
    """
    settings = get_settings()
    if settings.metrics_port is not None:
        metrics.start_exporter(settings.metrics_port, settings.metrics_host)


signals.worker_init.connect(_metrics_exporter)


def task(name: str, **options: Any) -> Callable[[F], F]:
    """``app.task`` with the name and options given, typed (Celery has no type hints)."""
    return cast(Callable[[F], F], app.task(name=name, **options))
