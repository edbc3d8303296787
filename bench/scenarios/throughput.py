"""End-to-end throughput of the engine against the three baselines, per worker topology.

A topology is a pool, a number of worker processes and their ``-c``: one process of each
pool given (``--pools``), and, with gevent, one gevent process per core as the Procfile is run
in production (``honcho start -c worker=<cores>``, ``docker compose up --scale worker=<cores>``).
``--compare-gevent-concurrency 200,500`` adds one gevent process at each of those ``-c``
beside the default one, so that the effect of ``-c`` is measured in the same run.
Per topology, engine workers and baseline workers run for the whole scenario (the per-core
topology's first process is the single-process topology's); each kind of work preloads the
same number of messages and is drained in turn by all the topology's processes at once
(:func:`common.drain`), in an order reversed every other round so the machine's drift hits
all kinds alike. The plain loop (no Celery) runs once per round in the harness process.
Ratios are of medians over rounds, all from this run.

Beside the rates, the cost of a delivery: the engine's own worker CPU per delivery (the
engine's minus the no-op task's, same topology) against the plain loop's CPU per delivery, and
Postgres's CPU per delivery during the engine's drain against its CPU per row during the
plain loop's.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from bench import fixtures, naive
from bench.context import Bench, WorkerSpec
from bench.pools import BASELINE_APP, ENGINE_APP, Worker
from bench.scenarios.common import drain
from bench.stats import Figure, Phase, Target, median

KINDS = ("noop", "engine", "naive")

#: The engine against the naive task, in every topology (the no-op task is shown beside it:
#: it is Celery's cost alone, below the floor of a delivery, so it has no target).
NAIVE_RATIO = 1.5

#: The engine's own worker CPU per delivery (minus the no-op task's), at most this many times
#: the plain loop's per delivery.
OWN_CPU_RATIO = 1.2

#: Postgres CPU per delivery during the engine's drain, at most this many times its CPU per
#: row during the plain loop.
POSTGRES_CPU_RATIO = 1.3


@dataclass(frozen=True)
class Topology:
    """``processes`` workers of ``pool``, each at ``concurrency`` (None: the pool's ``-c``)."""

    pool: str
    processes: int = 1
    concurrency: int | None = None

    @property
    def key(self) -> str:
        key = self.pool if self.concurrency is None else f"{self.pool} -c{self.concurrency}"
        return key if self.processes == 1 else f"{key} x{self.processes}"

    def names(self, side: str) -> list[str]:
        """Worker names of one side (``engine``, ``base``): the first is shared by topologies."""
        first = f"{side}-{self.pool}"
        if self.concurrency is not None:
            first += f"-c{self.concurrency}"
        return [first, *(f"{first}-{i}" for i in range(2, self.processes + 1))]


def topologies(pools: tuple[str, ...], compared: tuple[int, ...] = ()) -> list[Topology]:
    """One process per pool, one gevent process at each ``compared`` ``-c``, then one gevent
    process per core (when there are several)."""
    cores = os.cpu_count() or 1
    found = [Topology(pool) for pool in pools]
    if "gevent" in pools:
        found += [Topology("gevent", concurrency=c) for c in compared]
        if cores > 1:
            found.append(Topology("gevent", cores))
    return found


def plain(bench: Bench, targets: list[fixtures.Target], count: int) -> float | None:
    """Baseline (3): the harness POSTs and records ``count`` deliveries back to back."""
    from webhooks.core.config import get_settings

    bench.truncate_history()
    bench.receiver.reset()
    jobs = [fixtures.baseline_job(targets[i % len(targets)], i) for i in range(count)]
    with bench.phase("throughput", "plain loop", count_wal=True) as phase:
        started = time.monotonic()
        naive.plain_loop(get_settings().database_url, jobs)
        phase.seconds = time.monotonic() - started
        phase.ops = count
    phase.cpu["worker"] = phase.cpu["harness"]
    if bench.receiver.count() < count:
        print("bench: the plain loop lost requests")
        return None
    return count / phase.seconds


def _specs(shapes: list[Topology]) -> list[WorkerSpec]:
    """Every distinct worker of the topologies, as :meth:`Bench.workers` specs."""
    specs: dict[str, WorkerSpec] = {}
    for shape in shapes:
        for side, app in (("base", BASELINE_APP), ("engine", ENGINE_APP)):
            for name in shape.names(side):
                specs[name] = (app, shape.pool, name, shape.concurrency)
    return list(specs.values())


def _per_op(bench: Bench, name: str, measure: Callable[[Phase], float | None]) -> float | None:
    """Median over rounds of ``measure`` of the throughput phases ``name``."""
    found = [
        measure(phase)
        for phase in bench.phases
        if phase.scenario == "throughput" and phase.name == name
    ]
    return median([value for value in found if value is not None])


def _cpu_per_op(bench: Bench, name: str, party: str) -> float | None:
    """Median over rounds of ``party``'s CPU ms per op in the throughput phases ``name``."""
    return _per_op(bench, name, lambda phase: phase.cpu_ms_per_op(party))


def _cost_figures(bench: Bench, shape: Topology, label: str) -> None:
    """The engine's own worker CPU and Postgres CPU per delivery, against the plain loop's."""
    engine_cpu = _cpu_per_op(bench, f"engine ({shape.key})", "worker")
    noop_cpu = _cpu_per_op(bench, f"noop ({shape.key})", "worker")
    own = None if engine_cpu is None or noop_cpu is None else engine_cpu - noop_cpu
    plain_cpu = _cpu_per_op(bench, "plain loop", "worker")
    bench.add(
        Figure(
            "throughput",
            f"engine's own worker CPU per delivery (engine - no-op), {label}",
            own,
            "ms",
            plain_cpu,
            "plain loop",
            Target("ratio_max", OWN_CPU_RATIO),
        )
    )
    bench.add(
        Figure(
            "throughput",
            f"Postgres CPU per delivery, engine, {label}",
            _cpu_per_op(bench, f"engine ({shape.key})", "postgres"),
            "ms",
            _cpu_per_op(bench, "plain loop", "postgres"),
            "plain loop, per row",
            Target("ratio_max", POSTGRES_CPU_RATIO),
        )
    )
    for what, unit, measure in (
        ("records", "", Phase.wal_records_per_op),
        ("bytes", "B", Phase.wal_bytes_per_op),
    ):
        bench.add(
            Figure(
                "throughput",
                f"WAL {what} per delivery, engine, {label}",
                _per_op(bench, f"engine ({shape.key})", measure),
                unit,
                _per_op(bench, "plain loop", measure),
                "plain loop, per row",
            )
        )


def run(bench: Bench) -> None:
    options = bench.options
    count = options.size
    targets = fixtures.make_targets(bench.receiver, "tp", options.endpoints)
    shapes = topologies(options.pools, options.compare_gevent_concurrency)
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    with bench.workers(*_specs(shapes)) as workers:
        by_name = {worker.name: worker for worker in workers}

        def side(shape: Topology, kind: str) -> list[Worker]:
            names = shape.names("engine" if kind == "engine" else "base")
            return [by_name[name] for name in names]

        for round_index in range(options.rounds):
            kinds = KINDS if round_index % 2 == 0 else tuple(reversed(KINDS))
            for shape in shapes:
                for kind in kinds:
                    rate = drain(
                        bench, "throughput", kind, shape.key, side(shape, kind), targets, count
                    )
                    if rate is not None:
                        rates[(kind, shape.key)].append(rate)
            rate = plain(bench, targets, count)
            if rate is not None:
                rates[("plain", "-")].append(rate)

    plain_rate = median(rates[("plain", "-")])
    bench.memo.setdefault("max_rate", {})
    bench.memo.setdefault("naive_rate", {})
    bars: dict[str, float | None] = {}
    for shape in shapes:
        label = f"{shape.pool} -c{shape.concurrency or options.concurrency(shape.pool)}"
        if shape.processes > 1:
            label += f" x{shape.processes} processes"
        engine = median(rates[("engine", shape.key)])
        noop = median(rates[("noop", shape.key)])
        naive_rate = median(rates[("naive", shape.key)])
        if shape.processes == 1:
            bench.memo["max_rate"][shape.pool] = engine
            bench.memo["naive_rate"][shape.pool] = naive_rate
        bars.update(
            {
                f"no-op\n{shape.key}": noop,
                f"engine\n{shape.key}": engine,
                f"naive\n{shape.key}": naive_rate,
            }
        )
        name = f"engine e2e, {label}"
        unit = "deliveries/s"
        bench.add(Figure("throughput", name, engine, unit, noop, "no-op task"))
        bench.add(
            Figure(
                "throughput",
                name,
                engine,
                unit,
                naive_rate,
                "naive task",
                Target("ratio_min", NAIVE_RATIO),
            )
        )
        bench.add(Figure("throughput", name, engine, unit, plain_rate, "plain loop"))
        bench.add(Figure("throughput", f"no-op task, {label}", noop, "tasks/s"))
        bench.add(Figure("throughput", f"naive task, {label}", naive_rate, unit))
        _cost_figures(bench, shape, label)
    bars["plain\nloop"] = plain_rate
    bench.add(Figure("throughput", "plain loop (no Celery, 1 process)", plain_rate, "deliveries/s"))
    bench.series["throughput"] = bars
