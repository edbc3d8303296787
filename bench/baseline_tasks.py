"""The baselines' Celery app: ``celery -A bench.baseline_tasks worker``.

Its configuration is the engine's, read from the engine's own app (:mod:`workers.app`) at
import time, so the baselines run with exactly the broker, serializer, transport options,
``acks_late``, prefetch and task-event settings the engine runs with (and its task events in
batches, :mod:`workers.events`), whatever the engine's engineer changes there. Only the
routing differs: the baselines have queues of their own (``bench_noop``, ``bench_naive``)
so they never meet the engine's messages.

Importing :mod:`workers.app` also connects its ``worker_init`` handlers (psycogreen's wait
callback under gevent), so the naive task's database calls yield to other greenlets exactly
as the engine's do.

- ``bench.noop``: does nothing. Its rate is the ceiling of any Celery task on this broker,
  pool and configuration: the engine's ceiling.
- ``bench.naive``: sign, ``requests.post``, insert one attempt row with one commit
  (:func:`bench.naive.naive_delivery`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from celery import Celery
from celery.app.defaults import DEFAULTS

from bench import naive
from bench.names import NAIVE_QUEUE, NAIVE_TASK, NOOP_QUEUE, NOOP_TASK
from webhooks.core.config import get_settings

F = TypeVar("F", bound=Callable[..., Any])

#: Settings about where messages go: the baselines' own, not copied from the engine.
_ROUTING = {"task_queues", "task_routes", "task_default_queue", "beat_schedule", "imports"}


def engine_settings(engine: Celery) -> dict[str, Any]:
    """Every setting the engine's app changed from Celery's defaults, except routing."""
    return {
        key: value
        for key, value in engine.conf.items()
        if key in DEFAULTS and DEFAULTS[key] != value and key not in _ROUTING
    }


def _make_app() -> Celery:
    from workers.app import app as engine_app
    from workers.events import batch_task_events

    baseline = Celery("bench-baselines")
    baseline.conf.update(engine_settings(engine_app))
    batch_task_events(baseline)
    baseline.conf.update(
        task_queues={NOOP_QUEUE: {}, NAIVE_QUEUE: {}},
        task_default_queue=NOOP_QUEUE,
        task_routes={NOOP_TASK: {"queue": NOOP_QUEUE}, NAIVE_TASK: {"queue": NAIVE_QUEUE}},
    )
    return baseline


app = _make_app()


def _task(name: str) -> Callable[[F], F]:
    """``app.task`` with the name given, typed (Celery has no type hints)."""
    return cast(Callable[[F], F], app.task(name=name))


@_task(NOOP_TASK)
def noop(*_args: Any) -> None:
    """Nothing: the cost of a Celery task alone."""


@_task(NAIVE_TASK)
def naive_task(
    event_id: str, url: str, body: str, tenant_id: str, endpoint_id: str, timeout: float = 10.0
) -> None:
    """Baseline (2): a quick in-house delivery task."""
    naive.naive_delivery(
        get_settings().database_url, event_id, url, body, tenant_id, endpoint_id, timeout
    )
