"""``enqueue_event`` cost and producer throughput against its own building blocks.

The target: with 1 matching endpoint an ``enqueue_event`` costs at most 1.3x one bare
Celery publish plus one single-row Postgres commit; with 3 matching endpoints at most 2x
(one transaction, one connection, publishes reusing one producer connection). Both sides are
measured here in the same producer processes (1 and 4 of them, see :mod:`bench.producers`), in
alternating blocks: baseline, enqueue (1 endpoint), baseline, enqueue (3 endpoints), and
again. No worker consumes meanwhile: the producer side alone is timed. The reference is the
sum of the two medians (and of the two p99s for the p99 row); events/s is all the processes'
events over the wall time of their blocks.
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from typing import Any

from bench import fixtures
from bench.context import Bench, Processes
from bench.producers import create_scratch_table, producer_main
from bench.stats import Figure, Target, percentile

PROCESSES = (1, 4)
ENDPOINTS = (1, 3)
ROUNDS = 2
WARMUP = 20
LIMITS = {1: 1.3, 3: 2.0}


def _block(conns: list[Any], command: tuple[Any, ...]) -> list[dict[str, Any]]:
    for conn in conns:
        conn.send(command)
    return [conn.recv() for conn in conns]


def _wall(results: list[dict[str, Any]]) -> float:
    return float(max(r["end"] for r in results) - min(r["start"] for r in results))


def run(bench: Bench) -> None:
    create_scratch_table()
    tenants = {
        count: fixtures.make_targets(bench.receiver, f"enq{count}", 1, endpoints_per_tenant=count)[
            0
        ].uid
        for count in ENDPOINTS
    }
    # The processes are started once and the first of them alone is the single producer.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bench.producers"])
    pipes = [context.Pipe() for _ in range(max(PROCESSES))]
    spawned = [
        context.Process(target=producer_main, args=(child,), daemon=True) for _, child in pipes
    ]
    for process in spawned:
        process.start()
    try:
        conns = [parent for parent, _ in pipes]
        _block(conns, ("baseline", WARMUP))
        for endpoints in ENDPOINTS:
            _block(conns, ("enqueue", WARMUP, tenants[endpoints]))
        for processes in PROCESSES:
            _measure(bench, conns[:processes], spawned[:processes], tenants)
    finally:
        for parent, _ in pipes:
            parent.send(("stop",))
        for process in spawned:
            process.join(10)


def _measure(bench: Bench, conns: list[Any], spawned: list[Any], tenants: dict[int, str]) -> None:
    """Alternate baseline and enqueue blocks in ``len(conns)`` producers at once."""
    processes = len(conns)
    per_process = bench.options.enqueue_ops
    producers = [Processes(tuple(process.pid for process in spawned))]
    samples: dict[tuple[str, int], list[float]] = defaultdict(list)
    walls: dict[tuple[str, int], float] = defaultdict(float)
    for _ in range(ROUNDS):
        for endpoints in ENDPOINTS:
            with bench.phase("enqueue", f"baseline, {processes} proc", producers) as phase:
                results = _block(conns, ("baseline", per_process))
                phase.ops = per_process * processes
            for result in results:
                samples[("publish", endpoints)] += result["publish"]
                samples[("commit", endpoints)] += result["commit"]
            walls[("baseline", endpoints)] += _wall(results)
            name = f"enqueue {endpoints} ep, {processes} proc"
            with bench.phase("enqueue", name, producers) as phase:
                results = _block(conns, ("enqueue", per_process, tenants[endpoints]))
                phase.ops = per_process * processes
            for result in results:
                samples[("enqueue", endpoints)] += result["enqueue"]
            walls[("enqueue", endpoints)] += _wall(results)
    total = per_process * processes * ROUNDS
    for endpoints in ENDPOINTS:
        _figures(bench, processes, endpoints, samples, walls, total)


def _figures(
    bench: Bench,
    processes: int,
    endpoints: int,
    samples: dict[tuple[str, int], list[float]],
    walls: dict[tuple[str, int], float],
    total: int,
) -> None:
    def both(pct: float) -> float | None:
        publish = percentile(samples[("publish", endpoints)], pct)
        commit = percentile(samples[("commit", endpoints)], pct)
        return None if publish is None or commit is None else publish + commit

    label = (
        f"{processes} producer{'s' * (processes > 1)}, {endpoints} endpoint{'s' * (endpoints > 1)}"
    )
    enqueue = samples[("enqueue", endpoints)]
    publish_p50 = percentile(samples[("publish", endpoints)], 50) or 0.0
    commit_p50 = percentile(samples[("commit", endpoints)], 50) or 0.0
    bench.add(
        Figure(
            "enqueue",
            f"enqueue_event p50, {label}",
            percentile(enqueue, 50),
            "ms",
            both(50),
            "apply_async + 1-row commit",
            Target("ratio_max", LIMITS[endpoints]),
            note=f"publish p50 {publish_p50:.2f} ms + commit p50 {commit_p50:.2f} ms",
        )
    )
    bench.add(
        Figure(
            "enqueue",
            f"enqueue_event p99, {label}",
            percentile(enqueue, 99),
            "ms",
            both(99),
            "apply_async + 1-row commit",
        )
    )
    bench.add(
        Figure(
            "enqueue",
            f"events/s, {label}",
            total / walls[("enqueue", endpoints)] if walls[("enqueue", endpoints)] else None,
            "events/s",
            total / walls[("baseline", endpoints)] if walls[("baseline", endpoints)] else None,
            "apply_async + commit pairs/s",
        )
    )
