"""History queries on a large table, and the retention purge beside live inserts.

The targets: with 1,000,000 attempts and 300,000 deliveries in Postgres, any page of
deliveries or of an endpoint's run history, by endpoint and status, answers with p95 under
20 ms in-process; the purge of 500,000 rows never holds a concurrent insert for 100 ms.

1. Seed (``INSERT ... SELECT generate_series``, about a minute): one tenant, 10 endpoints,
   300,000 events and deliveries spread evenly over the last 45 days (92% succeeded, 8%
   failed, a few recent ones open), 1,000,000 attempts (3.3 per delivery on average), ids
   minted as ULIDs of their own time as the engine would; then ``VACUUM ANALYZE``.
2. Time pages of 50, first and deep (a cursor half-way down the endpoint's list), through
   the domain query functions and :func:`webhooks.history.pagination.page` (what the API runs),
   and the same pages through the Flask test client; print ``EXPLAIN (ANALYZE, BUFFERS)``.
3. Purge with the default retention (30 days): the oldest third, about 600,000 rows, in
   batches, while another process inserts an event, a delivery and an attempt per
   transaction and records each transaction's latency; the same inserter alone, for a few
   seconds before and after the purge, is the comparison.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection as PipeEnd
from multiprocessing.synchronize import Event as EventType
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from bench.context import Bench
from bench.stats import Figure, Target
from webhooks.core import clock
from webhooks.history.pagination import page
from webhooks.history.queries import deliveries_query, endpoint_attempts_query
from webhooks.models import Attempt, Delivery, Endpoint

PAGE = 50
SPAN_DAYS = 45
ENDPOINTS = 10
TARGET_MS = 20.0
INSERT_TARGET_MS = 100.0
ALONE_SECONDS = 10.0
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - a throwaway database

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def b32(expression: str, chars: int) -> str:
    """SQL for ``chars`` Crockford base32 digits of a bigint ``expression`` (a ULID part),
    inline: much faster than a PL/pgSQL loop over a million rows."""
    return " || ".join(
        f"substr('{_CROCKFORD}', ((({expression}) >> {5 * k}) & 31)::int + 1, 1)"
        for k in reversed(range(chars))
    )


def ulid_sql(prefix: str, ms: str, serial: str) -> str:
    """A ULID-shaped id: the time in ms, then a serial number where the randomness goes."""
    return f"'{prefix}_' || {b32(ms, 10)} || '0000000000' || {b32(serial, 6)}"


_EVENTS = """
INSERT INTO events (id, tenant_id, type, data, timestamp, created_at)
SELECT __EVT__, :tenant, 'booking.created',
       '{"booking": {"id": 1, "status": "confirmed"}}'::jsonb,
       to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0)
FROM (SELECT i, :start + i::bigint * :step AS ms FROM generate_series(1, :n) i) s
"""

_DELIVERIES = """
INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, status, attempts,
                        next_attempt_at, last_status_code, created_at, updated_at)
SELECT __DLV__, :tenant, __EVT__,
       (:endpoints)[1 + i % :e], st, CASE WHEN st = 'succeeded' THEN 1 + i % 3 ELSE 5 END,
       CASE WHEN st = 'retrying' THEN to_timestamp(ms / 1000.0) + interval '1 hour' END,
       CASE WHEN st = 'succeeded' THEN 200 ELSE 500 END,
       to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0)
FROM (SELECT i, :start + i::bigint * :step AS ms,
             CASE WHEN i > :open_after AND i % 5 = 0 THEN 'retrying'
                  WHEN (i / 10) % 100 < 92 THEN 'succeeded' ELSE 'failed' END AS st
      FROM generate_series(1, :n) i) s
"""

_ATTEMPTS = """
INSERT INTO attempts (id, tenant_id, delivery_id, endpoint_id, attempt, started_at,
                      duration_ms, request_url, request_headers, request_body,
                      response_status, response_headers, response_body, error)
SELECT __ATT__, :tenant, __DLV__, (:endpoints)[1 + d % :e], r + 1,
       to_timestamp(ms / 1000.0), dur, 'https://receiver.example/hooks/bookings',
       '{"Content-Type": "application/json", "User-Agent": "webhooks/0.1.0",
         "webhook-id": "evt_x", "webhook-timestamp": "1763800000",
         "webhook-signature": "[redacted]"}'::jsonb,
       '{"id": "evt_x", "type": "booking.created", "timestamp": "2026-11-22T10:00:00Z",
         "data": {"booking": {"id": 1, "status": "confirmed"}}}',
       CASE WHEN (j / 10) % 50 = 0 THEN NULL WHEN (j / 10) % 10 = 0 THEN 500 ELSE 200 END,
       CASE WHEN (j / 10) % 50 = 0 THEN NULL ELSE '{"Content-Type": "text/plain"}'::jsonb END,
       CASE WHEN (j / 10) % 50 = 0 THEN NULL ELSE 'ok' END,
       CASE WHEN (j / 10) % 50 = 0 THEN 'timeout' END
FROM (SELECT j, d, r, dms, dms + r * 1000 + 50 AS ms, 20 + (j::bigint * 7919) % 480 AS dur
      FROM (SELECT j, 1 + (j - 1) % :n AS d, (j - 1) / :n AS r FROM generate_series(1, :a) j) x,
           LATERAL (SELECT :start + d::bigint * :step AS dms) y) s
"""


@dataclass(frozen=True)
class Seeded:
    tenant_id: str
    tenant_uid: str
    endpoint_ids: list[str]


def seed(
    bench: Bench,
    engine: Engine,
    deliveries: int,
    attempts: int,
    tenant_uid: str = "history",
    *,
    span_days: float = SPAN_DAYS,
    ending: datetime | None = None,
    open_deliveries: bool = True,
) -> Seeded:
    """Fill the tables fast: one statement per table, computed in Postgres, for a new tenant
    ``tenant_uid`` (each scenario seeding its own, as ``all`` runs them in one database),
    spread over the ``span_days`` before ``ending`` (now), with 100 retrying deliveries among
    the newest unless not ``open_deliveries``; the days' partitions of attempts are created
    first."""
    from webhooks.admin.tenants import create_tenant
    from webhooks.core.db import new_session
    from webhooks.history import partitions

    with new_session() as session:
        tenant = create_tenant(session, tenant_uid)
        endpoints = [
            Endpoint(tenant_id=tenant.id, url=f"https://receiver.example/{n}", secret=SECRET)
            for n in range(ENDPOINTS)
        ]
        session.add_all(endpoints)
        session.commit()
        seeded = Seeded(tenant.id, tenant.uid, [endpoint.id for endpoint in endpoints])
    span_ms = int(span_days * 86_400_000)
    end = ending or clock.now()
    now_ms = int(end.timestamp() * 1000)
    first_day = (end - timedelta(milliseconds=span_ms)).date()
    days = (end.date() - first_day).days + 1
    partitions.create(
        [partitions.Partition(first_day + timedelta(days=n)) for n in range(days)], engine
    )
    params: dict[str, Any] = {
        "tenant": seeded.tenant_id,
        "endpoints": seeded.endpoint_ids,
        "e": ENDPOINTS,
        "n": deliveries,
        "open_after": deliveries - 500 if open_deliveries else deliveries,
        "a": attempts,
        "start": now_ms - span_ms,
        "step": span_ms // deliveries,
    }
    with bench.phase("history", f"seed {deliveries} deliveries, {attempts} attempts") as phase:
        ids = {
            "__EVT__": ulid_sql("evt", "ms", "i"),
            "__DLV__": ulid_sql("dlv", "ms", "i"),
        }
        in_attempts = {
            "__ATT__": ulid_sql("att", "ms + dur", "j"),
            "__DLV__": ulid_sql("dlv", "dms", "d"),
        }
        with engine.begin() as connection:
            for statement, names in ((_EVENTS, ids), (_DELIVERIES, ids), (_ATTEMPTS, in_attempts)):
                for token, sql in names.items():
                    statement = statement.replace(token, sql)
                connection.execute(text(statement), params)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE events, deliveries, attempts"))
        phase.ops = 2 * deliveries + attempts
    print(f"history: seeded in {phase.seconds:.1f}s", flush=True)
    return seeded


def deep_cursor(session: Session, query: Select[Any], id_column: Any) -> str | None:
    """The id half-way down ``query``'s rows, newest first (not timed)."""
    ids = query.with_only_columns(id_column).order_by(id_column.desc())
    count = session.scalar(select(func.count()).select_from(ids.subquery())) or 0
    cursor: str | None = session.scalar(ids.offset(count // 2).limit(1))
    return cursor


def _queries(seeded: Seeded, endpoint_id: str) -> dict[str, tuple[Select[Any], Any]]:
    return {
        "deliveries by endpoint": (
            deliveries_query(seeded.tenant_id, endpoint_id=endpoint_id),
            Delivery.id,
        ),
        "deliveries by endpoint+status=failed": (
            deliveries_query(seeded.tenant_id, endpoint_id=endpoint_id, status="failed"),
            Delivery.id,
        ),
        "deliveries by tenant+status=failed": (
            deliveries_query(seeded.tenant_id, status="failed"),
            Delivery.id,
        ),
        "run history by endpoint": (endpoint_attempts_query(endpoint_id), Attempt.id),
        "run history by endpoint+status=failed": (
            endpoint_attempts_query(endpoint_id, status="failed"),
            Attempt.id,
        ),
    }


def p50_p95(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return cuts[9], cuts[18]


def time_calls(call: Callable[[], Any], repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure_pages(bench: Bench, seeded: Seeded, repeat: int) -> dict[str, tuple[float, float]]:
    """p95 (ms) of first and deep pages of each query, endpoints taken at random."""
    from webhooks.core.db import new_session

    rng = random.Random(6)
    results: dict[str, tuple[float, float]] = {}
    with new_session() as session:
        cursors = {
            (endpoint_id, name): deep_cursor(session, query, column)
            for endpoint_id in seeded.endpoint_ids
            for name, (query, column) in _queries(seeded, endpoint_id).items()
        }
        for name in _queries(seeded, seeded.endpoint_ids[0]):
            for depth in ("first", "deep"):

                def one(name: str = name, depth: str = depth) -> None:
                    endpoint_id = rng.choice(seeded.endpoint_ids)
                    query, column = _queries(seeded, endpoint_id)[name]
                    after = cursors[endpoint_id, name] if depth == "deep" else None
                    assert len(page(session, query, column, limit=PAGE, after=after).items)
                    session.expunge_all()

                time_calls(one, 5)  # warm-up
                results[f"{name}, {depth} page"] = p50_p95(time_calls(one, repeat))
        print_plans(session, seeded, cursors)
    return results


def print_plans(session: Session, seeded: Seeded, cursors: dict[Any, str | None]) -> None:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of each deep page, as the API runs it."""
    endpoint_id = seeded.endpoint_ids[3]
    for name, (query, column) in _queries(seeded, endpoint_id).items():
        after = cursors[endpoint_id, name]
        paged = query.where(column < after).order_by(column.desc()).limit(PAGE + 1)
        compiled = paged.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
        plan = session.connection().exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", compiled.params
        )
        print(f"\n-- {name}, deep page\n" + "\n".join(row[0] for row in plan), flush=True)


def measure_api(seeded: Seeded, repeat: int) -> dict[str, tuple[float, float]]:
    """The same pages through the Flask test client (auth, parsing, serialisation)."""
    from api import create_app
    from api.pagination import encode_cursor
    from webhooks.admin.tokens import create_token
    from webhooks.core.db import new_session

    with new_session() as session:
        _, token = create_token(session, tenant=None)
        session.commit()
        endpoint_id = seeded.endpoint_ids[5]
        queries = _queries(seeded, endpoint_id)
        deep = {
            name: deep_cursor(session, query, column) for name, (query, column) in queries.items()
        }
    client = create_app().test_client()
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/v1/tenants/{seeded.tenant_uid}"
    paths = {
        "API deliveries by endpoint+status=failed": (
            f"{base}/deliveries?endpoint_id={endpoint_id}&status=failed&limit={PAGE}",
            deep["deliveries by endpoint+status=failed"],
        ),
        "API run history by endpoint": (
            f"{base}/endpoints/{endpoint_id}/attempts?limit={PAGE}",
            deep["run history by endpoint"],
        ),
    }
    results: dict[str, tuple[float, float]] = {}
    for name, (path, cursor) in paths.items():
        for depth, url in (
            ("first", path),
            ("deep", f"{path}&cursor={encode_cursor(cursor or '')}"),
        ):

            def call(url: str = url) -> None:
                response = client.get(url, headers=headers)
                assert response.status_code == 200, response.get_data(as_text=True)

            time_calls(call, 5)
            results[f"{name}, {depth} page"] = p50_p95(time_calls(call, repeat))
    return results


_INSERT = text(
    "INSERT INTO events (id, tenant_id, type, data, timestamp, created_at) "
    "VALUES (:e, :t, 'booking.created', '{}', now(), now());"
    "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, status, attempts, "
    "last_status_code, created_at, updated_at) "
    "VALUES (:d, :t, :e, :ep, 'succeeded', 1, 200, now(), now());"
    "INSERT INTO attempts (id, tenant_id, delivery_id, endpoint_id, attempt, started_at, "
    "duration_ms, request_url, request_headers, request_body, response_status) "
    "VALUES (:a, :t, :d, :ep, 1, now(), 30, 'https://receiver.example/', '{}', '{}', 200)"
)


def _insert_once(connection: Connection, seeded: Seeded) -> tuple[float, float]:
    """One producer's transaction: an event, its delivery and an attempt; ``(start, ms)``."""
    from webhooks.core.ids import new_id

    params = {
        "e": new_id("evt"),
        "d": new_id("dlv"),
        "a": new_id("att"),
        "t": seeded.tenant_id,
        "ep": seeded.endpoint_ids[0],
    }
    started = time.monotonic()
    with connection.begin():
        connection.execute(_INSERT, params)
    return started, (time.monotonic() - started) * 1000


def insert_loop(seeded: Seeded, ready: EventType, stop: EventType, out: PipeEnd) -> None:
    """Insert until ``stop``, then send back ``(start, ms)`` of each transaction
    (``time.monotonic``, the same clock in every process).

    Runs in a process of its own, as a producer does: a thread of the harness also timed
    the harness's garbage collections (37-71 ms while purging), which are no wait of
    Postgres. For the same reason the objects alive after the warm-up transaction (catalog
    caches, the foreign keys' plans; not timed) are frozen out of the collector: a full
    collection over the imported libraries took 30 ms on a quiet machine.
    """
    from webhooks.core.db import get_engine

    samples: list[tuple[float, float]] = []
    with get_engine().connect() as connection:
        _insert_once(connection, seeded)
        gc.freeze()
        ready.set()
        while not stop.is_set():
            samples.append(_insert_once(connection, seeded))
            time.sleep(0.002)
    out.send(samples)


@dataclass(frozen=True)
class Latencies:
    """Insert transactions in one window: ``(start, ms)`` each."""

    samples: list[tuple[float, float]]

    @classmethod
    def between(cls, samples: list[tuple[float, float]], start: float, end: float) -> Latencies:
        return cls([(at, ms) for at, ms in samples if start <= at < end])

    @property
    def max(self) -> float:
        return max(ms for _, ms in self.samples)

    @property
    def p99(self) -> float:
        """The 99th percentile; with a single insert in the window (a drop that fast), that
        insert's latency."""
        if len(self.samples) < 2:
            return self.max
        return statistics.quantiles([ms for _, ms in self.samples], n=100)[98]

    def describe(self, origin: float) -> str:
        """Count, max, p99, and when (seconds from ``origin``) each slow one started."""
        slow = [f"{ms:.0f} ms at {at - origin:+.1f}s" for at, ms in self.samples if ms >= 50]
        return (
            f"{len(self.samples)} inserts, max {self.max:.1f} ms, p99 {self.p99:.1f} ms; "
            f">= 50 ms: {slow}"
        )


@dataclass(frozen=True)
class PurgeRun:
    rows: int
    seconds: float
    during: Latencies
    alone: Latencies


def measure_purge(bench: Bench, seeded: Seeded, alone_seconds: float = ALONE_SECONDS) -> PurgeRun:
    """Run the purge while :func:`insert_loop` inserts in another process.

    The inserter runs alone for ``alone_seconds`` before the purge and again after it: its
    latencies then, in the same run on the same machine, are what those during the purge
    compare to, so the machine's own noise and the purge's doing can be told apart.
    """
    from webhooks.history.retention import purge

    checkpoints = "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
    checkpoints_before = bench.scalar(checkpoints)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    receiver, sender = context.Pipe(duplex=False)
    inserter = context.Process(
        target=insert_loop, args=(seeded, ready, stop, sender), name="history-inserter"
    )
    inserter.start()
    sender.close()  # the child's end only: recv() then fails if the child dies
    if not ready.wait(60):
        raise RuntimeError("the inserter process did not commit its first insert")
    time.sleep(alone_seconds)
    with bench.phase("history", "purge beside inserts") as phase:
        started = time.monotonic()
        purged = purge()
        ended = time.monotonic()
        phase.ops = purged.total
    time.sleep(alone_seconds)
    stop.set()
    samples: list[tuple[float, float]] = receiver.recv()
    inserter.join(10)
    during = Latencies.between(samples, started, ended)
    alone = Latencies([(at, ms) for at, ms in samples if not started <= at < ended])
    print(
        f"history: purged {purged} in {phase.seconds:.1f}s "
        f"({purged.total / phase.seconds:,.0f} rows/s); checkpoints on the server meanwhile: "
        f"{bench.scalar(checkpoints) - checkpoints_before}\n"
        f"history: during the purge (from +0s): {during.describe(started)}\n"
        f"history: without it ({alone_seconds:.0f} s before and after): {alone.describe(started)}",
        flush=True,
    )
    return PurgeRun(purged.total, phase.seconds, during, alone)


def add_purge_figures(bench: Bench, run: PurgeRun) -> None:
    """The target is on the purge window's max; the rest tells noise from blocking."""
    note = f"{run.rows} rows purged in {run.seconds:.1f}s; {len(run.during.samples)} inserts"
    target = Target("value_max", INSERT_TARGET_MS)
    for name, value, unit, check in (
        ("max insert latency during purge", run.during.max, "ms", target),
        ("p99 insert latency during purge", run.during.p99, "ms", None),
        ("max insert latency without purge", run.alone.max, "ms", None),
        ("p99 insert latency without purge", run.alone.p99, "ms", None),
        ("purge rate", run.rows / run.seconds, "rows/s", None),
    ):
        bench.add(Figure("history", name, value, unit, target=check, note=note))


def run(bench: Bench) -> None:
    from webhooks.core.db import get_engine

    quick = bench.options.quick
    deliveries, attempts = (5_000, 16_000) if quick else (300_000, 1_000_000)
    repeat = 20 if quick else 200
    engine = get_engine()
    bench.truncate_history()
    seeded = seed(bench, engine, deliveries, attempts)
    target = Target("value_max", TARGET_MS)
    note = f"p95 of {repeat} pages of {PAGE}, {deliveries} deliveries / {attempts} attempts"
    pages = measure_pages(bench, seeded, repeat)
    for name, (p50, p95_ms) in pages.items():
        bench.add(
            Figure(
                "history", f"{name} p95", p95_ms, "ms", target=target, note=f"{note}; p50 {p50:.1f}"
            )
        )
    # Informational: the whole request (auth, parsing, serialising 50 items) in the test client.
    for name, (p50, p95_ms) in measure_api(seeded, repeat).items():
        bench.add(Figure("history", f"{name} p95", p95_ms, "ms", note=f"{note}; p50 {p50:.1f}"))
    add_purge_figures(bench, measure_purge(bench, seeded, 1.0 if quick else ALONE_SECONDS))
    bench.truncate_history()
