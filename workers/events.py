"""Task events (for Flower) published in batches by workers without an event loop (gevent).

A worker sends task events (received, started, succeeded, failed...) so that Flower shows
every task. With an event loop (the prefork pool) Celery already buffers them and publishes
each batch as one message (routing key ``task.multi``, a list that Celery's event receiver,
and so Flower, unpacks); without one (gevent, threads, solo) every event is a broker
``PUBLISH`` of its own, sent from the task's greenlet: three per delivery, 21% of an engine
worker's samples on gevent (py-spy, ``docs/performance.md``). This consumer step buffers them
there too and a thread (a greenlet under gevent) flushes the buffer every
:data:`FLUSH_INTERVAL` seconds, or at once when it holds :data:`BUFFER_LIMIT` events: the same
events, each at most :data:`FLUSH_INTERVAL` late.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, bootsteps

log = logging.getLogger("webhooks.worker")

FLUSH_INTERVAL = 0.25
"""Seconds between flushes: how late Flower may see a task's event."""

BUFFER_LIMIT = 200
"""Events that make a flush at once (from the sending greenlet) instead of at the interval."""


class BatchedTaskEvents(bootsteps.StartStopStep):  # type: ignore[misc]  # untyped base
    """Buffer the task events of a worker without an event loop; flush them periodically."""

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        self._stopped: threading.Event | None = None
        super().__init__(parent, **kwargs)

    def start(self, parent: Any) -> None:
        dispatcher = parent.event_dispatcher
        if parent.hub is not None or dispatcher is None or not dispatcher.enabled:
            return  # an event loop buffers already; or no events to send
        dispatcher.buffer_group = frozenset({"task"})
        dispatcher.buffer_limit = BUFFER_LIMIT
        self._stopped = threading.Event()
        flusher = threading.Thread(
            target=self._flush_until_stopped,
            args=(parent, self._stopped),
            name="task-events-flusher",
            daemon=True,
        )
        flusher.start()

    def stop(self, parent: Any) -> None:
        """Flush what is buffered (a reconnect or shutdown would drop it), stop flushing."""
        if self._stopped is None:
            return
        self._stopped.set()
        self._stopped = None
        _flush(parent)

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)

    @staticmethod
    def _flush_until_stopped(parent: Any, stopped: threading.Event) -> None:
        while not stopped.wait(FLUSH_INTERVAL):
            _flush(parent)


def _flush(parent: Any) -> None:
    """Publish the buffered task events (the dispatcher of the current connection)."""
    dispatcher = parent.event_dispatcher
    if dispatcher is None:
        return
    try:
        dispatcher.flush()
    except Exception:  # a lost broker connection: the consumer reconnects and restarts us
        log.warning("could not publish buffered task events", exc_info=True)


def batch_task_events(app: Celery) -> None:
    """Give ``app``'s workers the batching step (the engine's app and the benchmark's)."""
    app.steps["consumer"].add(BatchedTaskEvents)
