"""End-to-end throughput of the engine against the three baselines, per worker pool.

Per pool, one engine worker and one baseline worker run for the whole scenario; each kind of
work preloads the same number of messages and is drained in turn (:func:`common.drain`), in
an order reversed every other round so the machine's drift hits all kinds alike. The plain
loop (no Celery) runs once per round in the harness process. Ratios are of medians over
rounds, all from this run.
"""

from __future__ import annotations

import time
from collections import defaultdict

from bench import fixtures, naive
from bench.context import Bench
from bench.pools import BASELINE_APP, ENGINE_APP
from bench.scenarios.common import drain
from bench.stats import Figure, Target, median

KINDS = ("noop", "engine", "naive")


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


def run(bench: Bench) -> None:
    options = bench.options
    count = options.size
    targets = fixtures.make_targets(bench.receiver, "tp", options.endpoints)
    specs = []
    for pool in options.pools:
        specs += [(BASELINE_APP, pool, f"base-{pool}"), (ENGINE_APP, pool, f"engine-{pool}")]
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    with bench.workers(*specs) as workers:
        by_name = {worker.name: worker for worker in workers}
        for round_index in range(options.rounds):
            kinds = KINDS if round_index % 2 == 0 else tuple(reversed(KINDS))
            for pool in options.pools:
                for kind in kinds:
                    worker = by_name[f"{'engine' if kind == 'engine' else 'base'}-{pool}"]
                    rate = drain(bench, "throughput", kind, pool, worker, targets, count)
                    if rate is not None:
                        rates[(kind, pool)].append(rate)
            rate = plain(bench, targets, count)
            if rate is not None:
                rates[("plain", "-")].append(rate)

    plain_rate = median(rates[("plain", "-")])
    bench.memo.setdefault("max_rate", {})
    bench.memo.setdefault("naive_rate", {})
    bars: dict[str, float | None] = {}
    for pool in options.pools:
        label = f"{pool} -c{options.concurrency(pool)}"
        engine = median(rates[("engine", pool)])
        noop = median(rates[("noop", pool)])
        naive_rate = median(rates[("naive", pool)])
        bench.memo["max_rate"][pool] = engine
        bench.memo["naive_rate"][pool] = naive_rate
        bars.update(
            {f"no-op\n{pool}": noop, f"engine\n{pool}": engine, f"naive\n{pool}": naive_rate}
        )
        name = f"engine e2e, {label}"
        bench.add(
            Figure(
                "throughput",
                name,
                engine,
                "deliveries/s",
                noop,
                "no-op task",
                Target("ratio_min", 0.7),
            )
        )
        bench.add(
            Figure(
                "throughput",
                name,
                engine,
                "deliveries/s",
                naive_rate,
                "naive task",
                Target("ratio_min", 1.4),
            )
        )
        bench.add(Figure("throughput", name, engine, "deliveries/s", plain_rate, "plain loop"))
        bench.add(Figure("throughput", f"no-op task, {label}", noop, "tasks/s"))
        bench.add(Figure("throughput", f"naive task, {label}", naive_rate, "deliveries/s"))
    bars["plain\nloop"] = plain_rate
    bench.add(Figure("throughput", "plain loop (no Celery, 1 process)", plain_rate, "deliveries/s"))
    bench.series["throughput"] = bars
