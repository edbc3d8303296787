"""The state of one run: options, the provisioned world, the receiver, what was measured.

Scenarios get a :class:`Bench` and use its helpers: :meth:`Bench.phase` to time a stretch of
work together with everybody's CPU, :meth:`Bench.workers` to run Celery workers for the
length of a scenario (their process groups are killed when it ends, whatever happens), and
:attr:`Bench.memo` to pass figures on (the latency scenario offers half the rate the
throughput scenario measured).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, text

from bench import meta, procstat
from bench.pools import Worker, control_app, start_workers
from bench.provision import Environment
from bench.receiver import Receiver
from bench.stats import Figure, Phase

POOLS = ("gevent", "prefork")

#: A worker to run: ``(app, pool, name)``, optionally with its ``-c`` (else the pool's).
WorkerSpec = tuple[str, str, str] | tuple[str, str, str, int | None]


class CpuSource(Protocol):
    """Whatever does the measured work: a worker's process group, producer processes."""

    def cpu(self) -> procstat.CpuSnapshot: ...


@dataclass(frozen=True)
class Processes:
    """Plain processes (e.g. the enqueue scenario's producers) as a :class:`CpuSource`."""

    pids: tuple[int, ...]

    def cpu(self) -> procstat.CpuSnapshot:
        return procstat.CpuSnapshot.of(self.pids)


@dataclass
class Options:
    """Sizes and knobs; ``--quick`` shrinks every size so that ``all`` takes a few minutes."""

    size: int = 20_000
    quick: bool = False
    pools: tuple[str, ...] = POOLS
    gevent_concurrency: int = 1000  # the Procfile's worker
    prefork_concurrency: int = 2
    rounds: int = 1
    endpoints: int = 50
    loglevel: str = "WARNING"
    rate: float | None = None
    latency_seconds: float = 30.0
    hol_events: int = 2_000
    hol_timeout: int = 5
    rss_deliveries: int = 100_000
    enqueue_ops: int = 1_000
    #: Extra gevent ``-c`` the throughput scenario measures beside ``gevent_concurrency``.
    compare_gevent_concurrency: tuple[int, ...] = ()
    history_attempts: int = 20_000_000

    @classmethod
    def build(cls, *, quick: bool, size: int | None, **overrides: Any) -> Options:
        options = cls(quick=quick)
        if quick:
            options.size = 200
            options.latency_seconds = 3.0
            options.hol_events = 60
            options.hol_timeout = 1
            options.rss_deliveries = 300
            options.enqueue_ops = 30
            options.history_attempts = 20_000
        if size is not None:
            options.size = size
            options.rss_deliveries = 5 * size
            options.hol_events = max(50, size // 10)
            options.enqueue_ops = max(20, size // 20)
        for key, value in overrides.items():
            if value is not None:
                setattr(options, key, value)
        return options

    def concurrency(self, pool: str) -> int:
        return self.gevent_concurrency if pool == "gevent" else self.prefork_concurrency


def _wait_for_flush(connection: Connection, lsn: str, timeout: float = 5.0) -> None:
    """Wait until the WAL up to ``lsn`` is flushed (``pg_walinspect`` reads only flushed
    WAL, and commits without a flush wait, such as the claim's, leave it to the WAL
    writer)."""
    deadline = time.monotonic() + timeout
    flushed = text("SELECT pg_current_wal_flush_lsn() >= CAST(:lsn AS pg_lsn)")
    while not connection.execute(flushed, {"lsn": lsn}).scalar():
        if time.monotonic() > deadline:
            raise TimeoutError(f"WAL not flushed up to {lsn} in {timeout} s")
        time.sleep(0.01)
    connection.rollback()


@dataclass
class Bench:
    options: Options
    env: Environment
    receiver: Receiver
    log_dir: str
    figures: list[Figure] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    memo: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    _active_workers: list[Worker] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    # -- the database and broker between phases ---------------------------------------

    def truncate_history(self) -> None:
        """Empty events, deliveries and attempts: each phase starts on small tables."""
        from webhooks.core.db import get_engine

        with get_engine().begin() as connection:
            connection.execute(text("TRUNCATE attempts, deliveries, events CASCADE"))

    def scalar(self, sql: str) -> Any:
        from webhooks.core.db import get_engine

        with get_engine().connect() as connection:
            return connection.execute(text(sql)).scalar()

    # -- workers ------------------------------------------------------------------------

    @contextlib.contextmanager
    def workers(self, *specs: WorkerSpec) -> Iterator[list[Worker]]:
        """Run ``(app, pool, name[, -c])`` workers for the block; kill their groups after it."""
        control = control_app(self.env.redis_url)
        started = [
            Worker(
                app=spec[0],
                pool=spec[1],
                concurrency=(spec[3] if len(spec) > 3 else None)
                or self.options.concurrency(spec[1]),
                name=spec[2],
                control=control,
                loglevel=self.options.loglevel,
            )
            for spec in specs
        ]
        self._active_workers.extend(started)
        try:
            start_workers(started, self.log_dir)
            yield started
        finally:
            for worker in started:
                worker.kill()
                self._active_workers.remove(worker)
            control.close()
            self.env.flush_redis()

    def kill_all_workers(self) -> None:
        for worker in list(self._active_workers):
            worker.kill()

    # -- timing with CPU accounting -----------------------------------------------------

    def _postgres_pids(self) -> list[int]:
        """The Postgres processes working for this run: the backends connected to the
        benchmark's database (and its autovacuum), and the server's own background processes
        (WAL writer, checkpointer...), not the backends of other databases on the server
        (other test suites on a shared machine)."""
        pids = self.scalar(
            "SELECT array_agg(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() OR datname IS NULL"
        )
        return list(pids or [])

    @contextlib.contextmanager
    def _wal_written(self, record: Phase) -> Iterator[None]:
        """Count into ``record`` the WAL records (and their bytes, full-page images
        included) written during the block for this benchmark's database: those naming one
        of its blocks, and every record (commits among them) of a transaction that wrote
        one. Read with ``pg_walinspect``, so other databases' writes on a shared server are
        not counted; a temporary replication slot keeps the block's WAL from being recycled
        by a checkpoint before it is read (and goes with its connection if this process
        dies)."""
        from webhooks.core.db import get_engine

        slot = f"bench_wal_{os.getpid()}"
        with get_engine().connect() as keeper:
            keeper.execute(text("CREATE EXTENSION IF NOT EXISTS pg_walinspect"))
            keeper.execute(
                text("SELECT pg_create_physical_replication_slot(:slot, true, true)"),
                {"slot": slot},
            )
            start = keeper.execute(text("SELECT pg_current_wal_lsn()")).scalar()
            keeper.commit()
            try:
                yield
                end = keeper.execute(text("SELECT pg_current_wal_lsn()")).scalar()
                _wait_for_flush(keeper, end)
                if end == start:  # nothing written (pg_walinspect wants a range)
                    return
                row = keeper.execute(
                    text(
                        """
                        WITH wal AS (
                            SELECT xid, record_length, block_ref
                            FROM pg_get_wal_records_info(CAST(:start AS pg_lsn),
                                                         CAST(:end AS pg_lsn))),
                        this AS (
                            SELECT '% rel %/' || oid || '/%' AS blocks
                            FROM pg_database WHERE datname = current_database()),
                        ours AS (
                            SELECT DISTINCT xid FROM wal, this
                            WHERE xid <> 0 AND block_ref LIKE this.blocks)
                        SELECT count(*), COALESCE(sum(record_length), 0) FROM wal, this
                        WHERE block_ref LIKE this.blocks OR xid IN (SELECT xid FROM ours)
                        """
                    ),
                    {"start": start, "end": end},
                ).one()
                record.wal_records, record.wal_bytes = int(row[0]), int(row[1])
            finally:
                keeper.rollback()
                keeper.execute(  # an error in this session has dropped it already
                    text(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                        " WHERE slot_name = :slot"
                    ),
                    {"slot": slot},
                )
                keeper.commit()

    def _cpu(self, workers: Sequence[CpuSource]) -> dict[str, Any]:
        redis_client = self.env.redis()
        try:
            info = redis_client.info("cpu")
        finally:
            redis_client.close()
        return {
            "worker": [worker.cpu() for worker in workers],
            "receiver": self.receiver.stats().cpu_seconds,
            "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
            "postgres": procstat.CpuSnapshot.of(self._postgres_pids()),
            "harness": procstat.own_cpu(),
            "machine": meta.machine_busy_seconds(),
        }

    @contextlib.contextmanager
    def phase(
        self,
        scenario: str,
        name: str,
        workers: Sequence[CpuSource] = (),
        *,
        count_wal: bool = False,
    ) -> Iterator[Phase]:
        """Time the block; the caller sets ``ops``. Records the CPU of every party.

        ``workers`` are what does the measured work; their CPU per op is the table's
        "worker CPU ms/op" column. ``count_wal``: count the block's WAL too
        (:meth:`_wal_written`), for blocks of bounded size only (the block's WAL is kept on
        the server's disk until it is counted).
        """
        record = Phase(scenario, name)
        counted = self._wal_written(record) if count_wal else contextlib.nullcontext()
        with counted:
            window_start = time.monotonic()
            before = self._cpu(workers)
            started = time.monotonic()
            yield record
            if not record.seconds:
                record.seconds = time.monotonic() - started
            after = self._cpu(workers)
            record.cpu_window = time.monotonic() - window_start
        record.cpu = {
            "worker": sum(
                a.since(b) for a, b in zip(after["worker"], before["worker"], strict=True)
            ),
            "receiver": after["receiver"] - before["receiver"],
            "redis": after["redis"] - before["redis"],
            "postgres": after["postgres"].since(before["postgres"]),
            "harness": after["harness"] - before["harness"],
            "machine": after["machine"] - before["machine"],
        }
        self.phases.append(record)
