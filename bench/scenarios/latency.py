"""Latency from enqueue to receipt at a fixed offered rate: half the measured maximum.

The harness calls ``enqueue_event`` on an open-loop schedule (a send is never delayed by a
slow previous one beyond its own duration) and notes the monotonic time before each call;
the receiver notes the monotonic time each request arrives; the difference is the latency a
receiver sees, enqueue included. The naive task is measured the same way at half of its own
maximum, as the baseline. The maxima come from the throughput scenario of the same run, or
from a short probe when this scenario runs alone (``--rate`` fixes the engine's instead).
"""

from __future__ import annotations

from bench import fixtures
from bench.context import Bench
from bench.names import NAIVE_QUEUE
from bench.pools import BASELINE_APP, ENGINE_APP, Worker
from bench.scenarios.common import drain, enqueue, latencies_ms, publish_baseline, send_paced
from bench.stats import Figure, Target, percentile
from webhooks.broker.publishing import DELIVERIES_QUEUE

WARMUP = 20


def _max_rate(
    bench: Bench, kind: str, pool: str, worker: Worker, targets: list[fixtures.Target]
) -> float:
    key = "max_rate" if kind == "engine" else "naive_rate"
    known = bench.memo.get(key, {}).get(pool)
    if known:
        return float(known)
    probe = max(100, min(bench.options.size, 2_000))
    rate = drain(bench, "latency", kind, pool, [worker], targets, probe)
    bench.memo.setdefault(key, {})[pool] = rate
    return rate or 20.0


def measure(
    bench: Bench,
    kind: str,
    pool: str,
    worker: Worker,
    targets: list[fixtures.Target],
    rate: float,
    *,
    scenario: str = "latency",
    count: int | None = None,
    timeout: float = 10.0,
) -> tuple[list[float], float, int]:
    """Send ``count`` events (``kind`` engine or naive) at ``rate``/s while ``worker`` consumes.

    Returns the latencies (ms) of the requests that reached healthy endpoints, the achieved
    offered rate and the number of duplicate receipts.
    """
    bench.truncate_history()
    bench.receiver.reset()
    queues = [DELIVERIES_QUEUE, "retries"] if kind == "engine" else [NAIVE_QUEUE]
    for queue in queues:
        worker.consume(queue)

    def send(index: int) -> str:
        if kind == "engine":
            return enqueue(targets, index)
        job = fixtures.baseline_job(targets[index % len(targets)], index)
        publish_baseline("naive", [job], timeout=timeout)
        return job[0]

    share = sum(1 for target in targets if target.healthy) / len(targets)
    # Warm up connections and code paths, then start from an empty record.
    send_paced(WARMUP, rate, send)
    fixtures.wait_for(lambda: bench.receiver.count() >= int(WARMUP * share), 30)
    bench.receiver.reset()

    count = count or max(50, int(rate * bench.options.latency_seconds))
    expected = sum(1 for i in range(count) if targets[i % len(targets)].healthy)
    with bench.phase(scenario, f"{kind} ({pool}) at {rate:.0f}/s", [worker]) as phase:
        starts, achieved = send_paced(count, rate, send)
        fixtures.wait_for(lambda: bench.receiver.count() >= expected, 60 + count / rate, 0.05)
        phase.ops = count
    if kind == "engine":
        # Let the last attempt rows commit before the next phase empties the tables.
        succeeded = "SELECT count(*) FROM deliveries WHERE status = 'succeeded'"
        fixtures.wait_for(lambda: bench.scalar(succeeded) >= expected, 30, 0.05)
    for queue in queues:
        worker.stop_consuming(queue)
    latencies, duplicates = latencies_ms(bench.receiver.records(), starts, "/ok/")
    if len(latencies) < expected:
        missing = expected - len(latencies)
        print(f"bench: {kind} ({pool}): {missing} of {expected} not received in time")
    return latencies, achieved, duplicates


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(latencies, p) for p in (50, 95, 99)}


def run(bench: Bench) -> None:
    targets = fixtures.make_targets(bench.receiver, "lat", bench.options.endpoints)
    groups: dict[str, dict[str, float | None]] = {}
    for pool in bench.options.pools:
        with bench.workers(
            (ENGINE_APP, pool, f"engine-{pool}"), (BASELINE_APP, pool, f"base-{pool}")
        ) as (
            engine_worker,
            base_worker,
        ):
            engine_rate = (
                bench.options.rate or _max_rate(bench, "engine", pool, engine_worker, targets) / 2
            )
            naive_rate = _max_rate(bench, "naive", pool, base_worker, targets) / 2
            engine, engine_offered, engine_dupes = measure(
                bench, "engine", pool, engine_worker, targets, engine_rate
            )
            naive, naive_offered, _ = measure(
                bench, "naive", pool, base_worker, targets, naive_rate
            )
        bench.memo.setdefault("latency_rate", {})[pool] = engine_rate
        ours, theirs = _percentiles(engine), _percentiles(naive)
        groups[f"engine\n{pool}"] = ours
        groups[f"naive\n{pool}"] = theirs
        note = (
            f"offered {engine_offered:.0f}/s (naive {naive_offered:.0f}/s), "
            f"{len(engine)} received, {engine_dupes} duplicates"
        )
        for pct, limit in (("p50", 10.0), ("p95", None), ("p99", 50.0)):
            bench.add(
                Figure(
                    "latency",
                    f"engine {pct}, {pool} at {engine_rate:.0f}/s",
                    ours[pct],
                    "ms",
                    theirs[pct],
                    f"naive at {naive_rate:.0f}/s",
                    Target("value_max", limit) if limit else None,
                    note=note if pct == "p50" else "",
                )
            )
    bench.series["latency"] = groups
