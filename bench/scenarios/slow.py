"""Slow receivers, as on the internet: 200 endpoints answering in 100 ms, and in 1 s.

Each of the 200 endpoints has a tenant and a receiver host of its own; the receiver answers
``/slow/<seconds>/...`` after that delay (:mod:`bench.receiver`). Per pool, the engine and
the naive task drain a backlog to the fast receiver, then to the 100 ms one, then to the 1 s
one, with the same warm workers. The figure is each slow rate as a ratio to the same
worker's fast-receiver rate: a dispatcher whose pool waits cheaply on the network keeps it;
one bounded by its concurrency delivers at most ``-c / latency`` a second.

A pool that collapses to ``-c / latency`` would take minutes to drain the full backlog, so
each drain is sized to about :data:`DRAIN_SECONDS` at that ceiling (at least two waves of
the pool): the rate of a shorter drain is the same rate.
"""

from __future__ import annotations

from collections.abc import Callable

from bench import fixtures
from bench.context import Bench
from bench.pools import BASELINE_APP, ENGINE_APP
from bench.scenarios.common import drain
from bench.stats import Figure, Target, median

ENDPOINTS = 200
#: Receiver delays, in seconds; 0 is the fast receiver, every slow rate's baseline.
LATENCIES = (0.0, 0.1, 1.0)
#: The engine's production pool keeps this share of its fast-receiver rate.
KEEPS = 0.8
DRAIN_SECONDS = 20.0
KINDS = ("engine", "naive")


def _paths(latency: float) -> Callable[[int], str]:
    """Every endpoint's receiver path for ``latency``: ``/ok/...`` or ``/slow/<s>/...``."""
    path = "ok" if latency == 0 else f"slow/{latency:g}"
    return lambda _index: path


def _count(size: int, concurrency: int, latency: float) -> int:
    """Messages to drain: ``size``, or fewer when ``-c / latency`` makes that long."""
    if latency == 0:
        return size
    ceiling = concurrency / latency
    return min(size, max(2 * concurrency, round(ceiling * DRAIN_SECONDS)))


def _label(latency: float) -> str:
    return "fast receiver" if latency == 0 else f"receivers answering in {latency * 1000:g} ms"


def run(bench: Bench) -> None:
    options = bench.options
    targets = {
        latency: fixtures.make_targets(
            bench.receiver, f"slow{latency:g}", ENDPOINTS, path=_paths(latency)
        )
        for latency in LATENCIES
    }
    for pool in options.pools:
        concurrency = options.concurrency(pool)
        specs = [(ENGINE_APP, pool, f"engine-{pool}"), (BASELINE_APP, pool, f"base-{pool}")]
        rates: dict[tuple[str, float], list[float]] = {}
        with bench.workers(*specs) as (engine_worker, base_worker):
            for round_index in range(options.rounds):
                order = LATENCIES if round_index % 2 == 0 else LATENCIES[::-1]
                for kind in KINDS:
                    worker = engine_worker if kind == "engine" else base_worker
                    for latency in order:
                        count = _count(options.size, concurrency, latency)
                        rate = drain(
                            bench, "slow", kind, f"{pool}, {_label(latency)}", [worker],
                            targets[latency], count,
                        )  # fmt: skip
                        if rate is not None:
                            rates.setdefault((kind, latency), []).append(rate)
        _figures(bench, pool, concurrency, rates)


def _figures(
    bench: Bench, pool: str, concurrency: int, rates: dict[tuple[str, float], list[float]]
) -> None:
    production = pool == "gevent"
    for kind in KINDS:
        who = "engine" if kind == "engine" else "naive task"
        fast = median(rates.get((kind, 0.0), []))
        bench.add(
            Figure("slow", f"{who}, {pool} -c{concurrency}, fast receiver", fast, "deliveries/s")
        )
        for latency in LATENCIES[1:]:
            bench.add(
                Figure(
                    "slow",
                    f"{who}, {pool} -c{concurrency}, {ENDPOINTS} {_label(latency)} "
                    f"(-c / latency: {concurrency / latency:,.0f}/s)",
                    median(rates.get((kind, latency), [])),
                    "deliveries/s",
                    fast,
                    "fast receiver",
                    Target("ratio_min", KEEPS) if kind == "engine" and production else None,
                )
            )
