"""Producer processes for the enqueue scenario (forked by a forkserver, driven by pipes).

Each process times, one call at a time, either ``enqueue_event`` or the baseline pair the
target compares it with: one bare Celery publish (stock Celery and kombu on the same broker,
with the library's serializer, queues and transport options, but kombu's own Redis transport
where the library uses :mod:`webhooks.broker.redis_transport`) and one single-row Postgres commit
(the library's own engine). Running both kinds in the same processes, in alternating blocks,
makes the ratio immune to the machine's drift and to what else the processes carry.

The processes come from a ``forkserver`` that imported this module (and so the library)
once: fresh processes that share nothing with the harness (no inherited connections), at
the cost of one import instead of one per process.
"""

from __future__ import annotations

import time
from functools import cache
from multiprocessing.connection import Connection
from typing import Any

from celery import Celery
from sqlalchemy import Column, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from bench.fixtures import EVENT_TYPE, sample_data
from bench.names import NOOP_QUEUE, NOOP_TASK
from webhooks import enqueue_event
from webhooks.broker.publishing import celery_config
from webhooks.core.config import get_settings
from webhooks.core.db import get_engine
from webhooks.core.ids import new_id

#: Where the baseline's single-row commits go: shaped like an event row (an id and JSON).
SCRATCH = Table(
    "bench_scratch", MetaData(), Column("id", Text, primary_key=True), Column("data", JSONB)
)


def create_scratch_table() -> None:
    SCRATCH.create(get_engine(), checkfirst=True)


@cache
def bare_celery_app() -> Celery:
    """Stock Celery on the library's broker and settings, without the library's transport."""
    url = get_settings().broker_url
    config = celery_config(url)
    config.pop("broker_transport", None)
    app = Celery("bare", broker=url, set_as_current=False)
    app.conf.update(config)
    return app


def _baseline(count: int) -> dict[str, Any]:
    app, engine = bare_celery_app(), get_engine()
    insert = SCRATCH.insert()
    publish_ms, commit_ms = [], []
    started = time.monotonic()
    for index in range(count):
        row_id = new_id("scr")
        payload = sample_data(index)
        t0 = time.monotonic()
        app.send_task(NOOP_TASK, args=[row_id], queue=NOOP_QUEUE)
        t1 = time.monotonic()
        with engine.begin() as connection:
            connection.execute(insert, {"id": row_id, "data": payload})
        t2 = time.monotonic()
        publish_ms.append((t1 - t0) * 1000)
        commit_ms.append((t2 - t1) * 1000)
    return {"publish": publish_ms, "commit": commit_ms, "start": started, "end": time.monotonic()}


def _enqueue(count: int, tenant: str) -> dict[str, Any]:
    latencies = []
    started = time.monotonic()
    for index in range(count):
        data = sample_data(index)
        t0 = time.monotonic()
        enqueue_event(EVENT_TYPE, data, tenant=tenant)
        latencies.append((time.monotonic() - t0) * 1000)
    return {"enqueue": latencies, "start": started, "end": time.monotonic()}


def producer_main(conn: Connection) -> None:
    """Serve ``("baseline", n)``, ``("enqueue", n, tenant)`` until ``("stop",)``."""
    while True:
        command = conn.recv()
        if command[0] == "stop":
            break
        if command[0] == "baseline":
            conn.send(_baseline(command[1]))
        else:
            conn.send(_enqueue(command[1], command[2]))
    conn.close()
