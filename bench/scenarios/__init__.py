"""The scenarios, in the order ``all`` runs them.

Each is a module with ``run(bench)`` that adds figures to the :class:`~bench.context.Bench`.
Order matters: ``throughput`` measures the maximum rates that ``latency`` and ``hol`` offer
half of (they probe for it themselves when run alone).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bench.context import Bench

#: name → (module, what it measures)
SCENARIOS: dict[str, tuple[str, str]] = {
    "throughput": (
        "bench.scenarios.throughput",
        "end-to-end deliveries/s, gevent and prefork, vs no-op task, naive task, plain loop",
    ),
    "slow": (
        "bench.scenarios.slow",
        "200 endpoints answering in 100 ms and in 1 s vs a fast receiver, engine and naive task",
    ),
    "latency": (
        "bench.scenarios.latency",
        "enqueue → receipt p50/p95/p99 at half the measured maximum rate",
    ),
    "hol": (
        "bench.scenarios.hol",
        "head-of-line: healthy endpoints' p99 while 5 of 50 endpoints hang",
    ),
    "enqueue": (
        "bench.scenarios.enqueue",
        "enqueue_event p50/p99 and events/s, 1 and 4 producers, 1 and 3 endpoints",
    ),
    "tenants": (
        "bench.scenarios.tenants",
        "enqueue_event p50 among 10,000 endpoints of 1,000 tenants (type wildcards) vs 1 endpoint",
    ),
    "rss": ("bench.scenarios.rss", "worker RSS growth over a long run"),
    "history": ("bench.scenarios.history", "history pages p95 on 1M attempts; purge vs inserts"),
    "partitions": (
        "bench.scenarios.partitions",
        "20M attempts kept (bench_partitions): e2e vs an empty database, pages p95,"
        " dropping a day beside inserts",
    ),
    "console": ("bench.scenarios.console", "console list pages p95 render on 1M attempts"),
    "schemas": (
        "bench.scenarios.schemas",
        "hostile payload schemas (ReDoS, uniqueItems, budget) vs benign ones: wall-clock ceiling",
    ),
    "signing": (
        "bench.scenarios.signing",
        "ed25519 vs HMAC: sign time per delivery, and end-to-end deliveries/s",
    ),
    "sweep": (
        "bench.scenarios.sweep",
        "sweeper cost and republished messages on a 50,000-message honest backlog",
    ),
    "controls": (
        "bench.scenarios.controls",
        "rate-limit accuracy, healthy latency beside rate-limited and open-circuit endpoints,"
        " FIFO throughput",
    ),
}


def runner(name: str) -> Callable[[Bench], None]:
    module = importlib.import_module(SCENARIOS[name][0])
    run: Callable[[Bench], None] = module.run
    return run
