"""History that stays fast as it grows: a big partitioned history against an empty database.

The targets (issue 21): with 20,000,000 attempts stored, end-to-end throughput at least 0.9x
that on an empty database of the same run; every history page p95 under 20 ms; dropping a
day of history under 1 s with no concurrent insert slower than 50 ms.

1. **The big history** lives in a database kept between runs, ``bench_partitions``
   (generating it holds the machine for a while: it is made once, by the history
   scenario's ``INSERT ... SELECT generate_series`` seed, and made again only for another
   ``--history-attempts``, 20,000,000 by default, or once it is 2 days old). Its rows span
   the 28 days before the seed, inside the default retention, so no run's purge eats into
   it. The
   Fernet key it was seeded with is kept in it (``bench_meta``) and given to this run's
   processes after their own key, so its endpoints' secrets still decrypt.
2. **Throughput**: the engine (one gevent worker, the production pool) drains ``--size``
   deliveries on the run's empty database and on the big one, three times each in turns
   (:data:`ORDER`: drift hits both alike); the ratio is of the medians.
3. **Pages**: the history scenario's pages (in-process and through the Flask test client),
   first and deep, on the big history.
4. **Dropping a day**: one day of history 40 days old (a thirtieth of the big one's rows)
   is added, then retention runs with the default 30 days while another process inserts an
   event, a delivery and an attempt per transaction: first the partition drop
   (:func:`webhooks.history.retention.drop_partitions`, the target), then the rest of the
   purge, the day's deliveries and events deleted in batches (reported beside it).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, make_url, text

from bench import fixtures
from bench.context import Bench
from bench.pools import ENGINE_APP
from bench.scenarios import history
from bench.scenarios.common import preload
from bench.stats import Figure, Target
from tests import services
from webhooks.broker.publishing import DELIVERIES_QUEUE
from webhooks.core import clock

KEPT_DATABASE = "bench_partitions"
SPAN_DAYS = 28
KEEP_DAYS = 2
OLD_DAY = 40
ATTEMPTS_PER_DELIVERY = 3.3
THROUGHPUT_RATIO = 0.9
PAGE_TARGET_MS = 20.0
DROP_TARGET_S = 1.0
INSERT_TARGET_MS = 50.0
ALONE_SECONDS = 5.0
TENANT = "partitions"
#: Drains in turn, so that the machine's drift hits both databases alike.
ORDER = ("empty", "big", "big", "empty", "empty", "big")


@contextlib.contextmanager
def using(url: str, extra_key: str | None = None) -> Iterator[None]:
    """This process (and the workers it starts meanwhile) on the database at ``url``."""
    from webhooks.core.config import get_settings

    saved = {name: os.environ[name] for name in ("WEBHOOKS_DATABASE_URL", "WEBHOOKS_SECRET_KEY")}
    os.environ["WEBHOOKS_DATABASE_URL"] = url
    if extra_key:
        os.environ["WEBHOOKS_SECRET_KEY"] = f"{saved['WEBHOOKS_SECRET_KEY']},{extra_key}"
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.update(saved)
        get_settings.cache_clear()


def _kept(url: str, attempts: int) -> bool:
    """The database at ``url`` holds a seed of ``attempts`` young enough to be kept: made
    less than :data:`KEEP_DAYS` ago, so that none of it is past the retention yet."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT attempts, seeded_at FROM bench_meta WHERE attempts = :n"),
                {"n": attempts},
            ).first()
    except Exception:  # no such database or table: never seeded
        return False
    finally:
        engine.dispose()
    return row is not None and clock.now() - row.seeded_at < timedelta(days=KEEP_DAYS)


def kept_history(bench: Bench, attempts: int) -> tuple[str, str, history.Seeded]:
    """The kept database's URL, its seed key and tenant; seeded now if it is not (as big).

    With ``--quick`` the database is the run's own (``bench_partitions_<pid>``), dropped at
    the end, so that the smoke test neither uses nor replaces the kept one.
    """
    from webhooks.core.db import get_engine
    from webhooks.ops import migrate

    admin = bench.env.admin_url
    name = f"{KEPT_DATABASE}_{os.getpid()}" if bench.options.quick else KEPT_DATABASE
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    if bench.options.quick:
        bench.env.add_cleanup(lambda: services.drop_database(admin, name))
    if not _kept(url, attempts):
        services.drop_database(admin, name)
        services.create_database(admin, name)
        migrate.upgrade(url)
        key = os.environ["WEBHOOKS_SECRET_KEY"]
        with using(url):
            deliveries = int(attempts / ATTEMPTS_PER_DELIVERY)
            history.seed(bench, get_engine(), deliveries, attempts, TENANT, span_days=SPAN_DAYS)
            with get_engine().begin() as connection:
                connection.execute(
                    text(
                        "CREATE TABLE bench_meta (key text, attempts bigint, seeded_at timestamptz)"
                    )
                )
                connection.execute(
                    text("INSERT INTO bench_meta VALUES (:key, :n, now())"),
                    {"key": key, "n": attempts},
                )
            get_engine().dispose()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            key = str(connection.execute(text("SELECT key FROM bench_meta")).scalar())
            tenant_id = connection.execute(
                text("SELECT id FROM tenants WHERE uid = :uid"), {"uid": TENANT}
            ).scalar()
            endpoint_ids = list(
                connection.execute(
                    text("SELECT id FROM endpoints WHERE tenant_id = :t ORDER BY id"),
                    {"t": tenant_id},
                ).scalars()
            )
            stored = connection.execute(text("SELECT count(*) FROM attempts")).scalar()
    finally:
        engine.dispose()
    print(f"partitions: history in {name}: {stored:,} attempts", flush=True)
    return url, key, history.Seeded(str(tenant_id), TENANT, endpoint_ids)


def drain_engine(bench: Bench, label: str, count: int, index: int) -> float | None:
    """Engine deliveries/s over ``count`` deliveries on the current database, whatever it
    already holds (only this drain's deliveries are counted)."""
    from webhooks.history.queries import id_floor

    targets = fixtures.make_targets(bench.receiver, f"pt{os.getpid()}-{label}{index}", 10)
    floor = id_floor("dlv", clock.now() - timedelta(seconds=1))
    done = f"SELECT count(*) FROM deliveries WHERE id >= '{floor}' AND status = 'succeeded'"  # noqa: S608 - our own id
    bench.receiver.reset()
    with bench.workers((ENGINE_APP, "gevent", f"engine-{label}")) as workers:
        preload(bench, "partitions", "engine", label, targets, count)
        with bench.phase("partitions", f"engine ({label})", workers) as phase:
            started = time.monotonic()
            for worker in workers:
                worker.consume(DELIVERIES_QUEUE)
            finished = fixtures.wait_for(
                lambda: bench.receiver.count() >= count and bench.scalar(done) >= count,
                120 + count / 10,
            )
            phase.ops = count
            phase.seconds = (finished or time.monotonic()) - started
    if finished is None:
        print(f"partitions: the engine ({label}) did not finish {count} deliveries")
        return None
    rate = count / (finished - started)
    print(f"partitions: engine on the {label} database: {rate:.0f} deliveries/s", flush=True)
    return rate


def measure_throughput(bench: Bench, big_url: str, key: str) -> None:
    count = bench.options.size
    rates: dict[str, list[float]] = {"empty": [], "big": []}
    for index, label in enumerate(ORDER):
        if label == "big":
            with using(big_url, key):
                rate = drain_engine(bench, label, count, index)
        else:
            bench.truncate_history()
            rate = drain_engine(bench, label, count, index)
        if rate is not None:
            rates[label].append(rate)
    empty, big = (statistics.median(rates[k]) if rates[k] else None for k in ("empty", "big"))
    bench.add(
        Figure(
            "partitions",
            "engine e2e with the big history, gevent",
            big,
            "deliveries/s",
            empty,
            "empty database",
            Target("ratio_min", THROUGHPUT_RATIO),
            note=f"{count} deliveries per drain, medians of {len(ORDER) // 2} drains each",
        )
    )


def measure_pages(bench: Bench, seeded: history.Seeded, attempts: int) -> None:
    repeat = 20 if bench.options.quick else 200
    note = f"p95 of {repeat} pages of {history.PAGE} among ~{attempts:,} attempts"
    target = Target("value_max", PAGE_TARGET_MS)
    for name, (p50, p95) in history.measure_pages(bench, seeded, repeat).items():
        bench.add(
            Figure(
                "partitions", f"{name} p95", p95, "ms", target=target, note=f"{note}; p50 {p50:.1f}"
            )
        )
    for name, (p50, p95) in history.measure_api(seeded, repeat).items():
        bench.add(
            Figure(
                "partitions", f"{name} p95", p95, "ms", target=target, note=f"{note}; p50 {p50:.1f}"
            )
        )


def measure_drop(bench: Bench, seeded: history.Seeded, attempts: int) -> None:
    """Add a day of history past the retention, then purge it beside a live inserter."""
    from webhooks.core.db import get_engine
    from webhooks.history import retention

    day_attempts = max(attempts // SPAN_DAYS, 1000)
    old_day = (clock.now() - timedelta(days=OLD_DAY)).date()
    history.seed(
        bench,
        get_engine(),
        int(day_attempts / ATTEMPTS_PER_DELIVERY),
        day_attempts,
        f"partitions-old-{os.getpid()}",
        span_days=0.9,  # 01:24 to 23:00 of that day: one partition
        ending=datetime.combine(old_day, datetime.min.time(), UTC) + timedelta(hours=23),
        open_deliveries=False,
    )
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    receiver, sender = context.Pipe(duplex=False)
    inserter = context.Process(
        target=history.insert_loop, args=(seeded, ready, stop, sender), name="drop-inserter"
    )
    inserter.start()
    sender.close()
    if not ready.wait(60):
        raise RuntimeError("the inserter process did not commit its first insert")
    time.sleep(ALONE_SECONDS)
    before = retention.cutoff()
    with bench.phase("partitions", "drop a day's partition beside inserts") as phase:
        drop_started = time.monotonic()
        dropped = retention.drop_partitions(before)
        drop_ended = time.monotonic()
        phase.ops = dropped
    with bench.phase("partitions", "the rest of the day's purge beside inserts") as phase:
        purged = retention.purge()
        purge_ended = time.monotonic()
        phase.ops = purged.total
    time.sleep(ALONE_SECONDS)
    stop.set()
    samples: list[tuple[float, float]] = receiver.recv()
    inserter.join(10)
    during_drop = history.Latencies.between(samples, drop_started, drop_ended)
    during_purge = history.Latencies.between(samples, drop_ended, purge_ended)
    alone = history.Latencies(
        [(at, ms) for at, ms in samples if not drop_started <= at < purge_ended]
    )
    drop_s = drop_ended - drop_started
    print(
        f"partitions: dropped {dropped} partition(s) ({day_attempts:,} attempts) in "
        f"{drop_s * 1000:.1f} ms; then purged {purged} in {purge_ended - drop_ended:.1f}s\n"
        f"partitions: inserts during the drop: "
        f"{during_drop.describe(drop_started) if during_drop.samples else 'none'}\n"
        f"partitions: during the rest of the purge: {during_purge.describe(drop_ended)}\n"
        f"partitions: without either: {alone.describe(drop_started)}",
        flush=True,
    )
    note = f"a day of {day_attempts:,} attempts; {dropped} partition dropped"
    # The drop's window is milliseconds: the inserts that overlap it (started before it
    # ended and ended after it started) are the ones it could have held.
    overlapping = [ms for at, ms in samples if at < drop_ended and at + ms / 1000 > drop_started]
    worst = max(overlapping, default=0.0)
    bench.add(
        Figure(
            "partitions",
            "drop a day of attempts (partition)",
            drop_s,
            "s",
            target=Target("value_max", DROP_TARGET_S),
            note=note,
        )
    )
    bench.add(
        Figure(
            "partitions",
            "max insert latency overlapping the drop",
            worst,
            "ms",
            target=Target("value_max", INSERT_TARGET_MS),
            note=f"{len(overlapping)} inserts overlapped it",
        )
    )
    bench.add(
        Figure(
            "partitions",
            "the day's deliveries and events purged in batches",
            purge_ended - drop_ended,
            "s",
            note=f"{purged.deliveries} deliveries, {purged.events} events, "
            f"{purged.attempts} attempts",
        )
    )
    if during_purge.samples:
        bench.add(
            Figure(
                "partitions",
                "max insert latency during the rest of the purge",
                during_purge.max,
                "ms",
                note=f"{len(during_purge.samples)} inserts",
            )
        )
    bench.add(
        Figure(
            "partitions",
            "max insert latency without drop or purge",
            alone.max,
            "ms",
            note=f"{len(alone.samples)} inserts, {ALONE_SECONDS:.0f} s before and after",
        )
    )


def run(bench: Bench) -> None:
    attempts = bench.options.history_attempts
    url, key, seeded = kept_history(bench, attempts)
    measure_throughput(bench, url, key)
    with using(url, key):
        measure_pages(bench, seeded, attempts)
        measure_drop(bench, seeded, attempts)
