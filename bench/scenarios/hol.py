"""Head-of-line isolation: 5 of 50 endpoints hang while the other 45 get their events.

The hanging endpoints accept the connection and never answer (``/hang`` on the receiver),
so every attempt to them lasts the endpoint's whole timeout and is then retried on the
default schedule. Events go round robin to all 50 endpoints at the latency scenario's rate
until the 45 healthy ones have received ``--hol-events`` (2,000) between them. The figure is
the healthy endpoints' latency (enqueue → receipt): a dispatcher that isolates endpoints
keeps it near the unloaded latency; one that lets the dead endpoints occupy its pool does
not. The naive task under the same load, same pool, is the baseline. Gevent pool only: the
production pool, and the only one where isolation is a question of design.
"""

from __future__ import annotations

from bench import fixtures
from bench.context import Bench
from bench.pools import BASELINE_APP, ENGINE_APP
from bench.scenarios.latency import measure
from bench.stats import Figure, Target, percentile

ENDPOINTS = 50


def _hanging(index: int) -> bool:
    return index % 10 == 0  # 5 of 50, spread over the round robin


def run(bench: Bench) -> None:
    options = bench.options
    if "gevent" not in options.pools:
        bench.add(Figure("hol", "healthy p99", None, "ms", note="needs the gevent pool"))
        return
    targets = fixtures.make_targets(
        bench.receiver,
        "hol",
        ENDPOINTS,
        path=lambda i: "hang" if _hanging(i) else "ok",
        timeout_seconds=options.hol_timeout,
    )
    healthy_share = sum(1 for i in range(ENDPOINTS) if not _hanging(i)) / ENDPOINTS
    count = round(options.hol_events / healthy_share)
    rate = options.rate or bench.memo.get("latency_rate", {}).get("gevent") or 50.0
    # One worker at a time, each killed before the other side runs: the engine still has
    # attempts to the hanging endpoints in flight (and retries scheduled) when its healthy
    # deliveries are all in, and they must not load the machine during the baseline.
    with bench.workers((ENGINE_APP, "gevent", "engine-gevent")) as (engine_worker,):
        engine, _, dupes = measure(
            bench, "engine", "gevent", engine_worker, targets, rate, scenario="hol", count=count
        )
        engine_hangs = bench.receiver.stats().hangs
    with bench.workers((BASELINE_APP, "gevent", "base-gevent")) as (base_worker,):
        naive, _, _ = measure(
            bench,
            "naive",
            "gevent",
            base_worker,
            targets,
            rate,
            scenario="hol",
            count=count,
            timeout=options.hol_timeout,
        )
    groups = {}
    for label, values in (("engine", engine), ("naive", naive)):
        groups[f"{label}\n5/50 hanging"] = {f"p{p}": percentile(values, p) for p in (50, 95, 99)}
    bench.series["hol"] = groups
    note = (
        f"{len(engine)} healthy receipts at {rate:.0f}/s offered, {engine_hangs} requests to "
        f"hanging endpoints ({options.hol_timeout}s timeout), {dupes} duplicates"
    )
    bench.add(
        Figure(
            "hol", "healthy p50", percentile(engine, 50), "ms", percentile(naive, 50), "naive task"
        )
    )
    bench.add(
        Figure(
            "hol",
            "healthy p99",
            percentile(engine, 99),
            "ms",
            percentile(naive, 99),
            "naive task",
            Target("value_max", 1000.0),
            note=note,
        )
    )
    bench.add(
        Figure(
            "hol",
            "healthy max",
            max(engine, default=None),
            "ms",
            max(naive, default=None),
            "naive task",
        )
    )
