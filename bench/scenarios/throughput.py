"""End-to-end throughput of the engine against the three baselines, per worker topology.

A topology is a pool and a number of worker processes: one process of each pool given
(``--pools``), and, with gevent, one gevent process per core as the Procfile is run in
production (``honcho start -c worker=<cores>``, ``docker compose up --scale worker=<cores>``).
Per topology, engine workers and baseline workers run for the whole scenario (the per-core
topology's first process is the single-process topology's); each kind of work preloads the
same number of messages and is drained in turn by all the topology's processes at once
(:func:`common.drain`), in an order reversed every other round so the machine's drift hits
all kinds alike. The plain loop (no Celery) runs once per round in the harness process.
Ratios are of medians over rounds, all from this run.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass

from bench import fixtures, naive
from bench.context import Bench
from bench.pools import BASELINE_APP, ENGINE_APP, Worker
from bench.scenarios.common import drain
from bench.stats import Figure, Target, median

KINDS = ("noop", "engine", "naive")

#: The engine against the naive task, in every topology (the no-op task is shown beside it:
#: it is Celery's cost alone, below the floor of a delivery, so it has no target).
NAIVE_RATIO = 1.5


@dataclass(frozen=True)
class Topology:
    """``processes`` workers of ``pool``, each at the pool's ``-c``."""

    pool: str
    processes: int = 1

    @property
    def key(self) -> str:
        return self.pool if self.processes == 1 else f"{self.pool} x{self.processes}"

    def names(self, side: str) -> list[str]:
        """Worker names of one side (``engine``, ``base``): the first is shared by topologies."""
        first = f"{side}-{self.pool}"
        return [first, *(f"{first}-{i}" for i in range(2, self.processes + 1))]


def topologies(pools: tuple[str, ...]) -> list[Topology]:
    """One process per pool, then one gevent process per core (when there are several)."""
    cores = os.cpu_count() or 1
    found = [Topology(pool) for pool in pools]
    if "gevent" in pools and cores > 1:
        found.append(Topology("gevent", cores))
    return found


def plain(bench: Bench, targets: list[fixtures.Target], count: int) -> float | None:
    """Baseline (3): the harness POSTs and records ``count`` deliveries back to back."""
    from webhooks.core.config import get_settings

    bench.truncate_history()
    bench.receiver.reset()
    jobs = [fixtures.baseline_job(targets[i % len(targets)], i) for i in range(count)]
    with bench.phase("throughput", "plain loop") as phase:
        started = time.monotonic()
        naive.plain_loop(get_settings().database_url, jobs)
        phase.seconds = time.monotonic() - started
        phase.ops = count
    phase.cpu["worker"] = phase.cpu["harness"]
    if bench.receiver.count() < count:
        print("bench: the plain loop lost requests")
        return None
    return count / phase.seconds


def _specs(shapes: list[Topology]) -> list[tuple[str, str, str]]:
    """Every distinct worker of the topologies, as :meth:`Bench.workers` specs."""
    specs: dict[str, tuple[str, str, str]] = {}
    for shape in shapes:
        for side, app in (("base", BASELINE_APP), ("engine", ENGINE_APP)):
            for name in shape.names(side):
                specs[name] = (app, shape.pool, name)
    return list(specs.values())


def run(bench: Bench) -> None:
    options = bench.options
    count = options.size
    targets = fixtures.make_targets(bench.receiver, "tp", options.endpoints)
    shapes = topologies(options.pools)
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
        label = f"{shape.pool} -c{options.concurrency(shape.pool)}"
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
    bars["plain\nloop"] = plain_rate
    bench.add(Figure("throughput", "plain loop (no Celery, 1 process)", plain_rate, "deliveries/s"))
    bench.series["throughput"] = bars
