"""Delivery controls: rate-limit accuracy, head-of-line with controlled endpoints, FIFO cost.

Beat is not part of the bench, so the harness runs the sweep itself every
``WEBHOOKS_SWEEP_INTERVAL_SECONDS`` while a phase lasts, as beat would: it hands parked
deliveries their rate-limit slots.

- **Rate-limit accuracy.** One endpoint limited to 20/s with a backlog of 2,000 deliveries,
  consumed by 2 worker processes: the deliveries received in each full 10 s window, as a rate,
  against the limit (target: every window within ±5 %).
- **Head-of-line with controls.** 40 healthy endpoints get events at the latency scenario's
  rate, first alone (the baseline), then beside 5 endpoints limited to 1/s with 2,000 waiting
  deliveries each and 5 whose circuit is open (their receiver hangs: a request to one would
  show). The healthy endpoints' p99 enqueue → receipt (target ≤ 1.5x the baseline's) and the
  worker CPU per healthy delivery (target ≤ 1.2x).
- **FIFO cost.** The same backlog drained by 20 FIFO endpoints and by 20 unordered ones:
  deliveries per second, and the ratio.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from bench import fixtures
from bench.context import Bench
from bench.pools import ENGINE_APP, Worker
from bench.scenarios.common import enqueue, latencies_ms, send_paced
from bench.stats import Figure, Target, percentile
from webhooks.broker.publishing import DELIVERIES_QUEUE, RETRIES_QUEUE

SCENARIO = "controls"
QUEUES = (DELIVERIES_QUEUE, RETRIES_QUEUE)
WINDOW = 10.0

#: Open deliveries due now whose message no worker has handled yet.
_UNSEEN = (
    "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'retrying')"
    " AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until <= now())"
)


@contextlib.contextmanager
def sweeping() -> Iterator[None]:
    """Beat's sweep, in a thread of the harness, for the block."""
    from webhooks.core.config import get_settings
    from webhooks.delivery.sweeper import sweep

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(get_settings().sweep_interval_seconds):
            sweep()

    thread = threading.Thread(target=loop, name="bench-sweep", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _configure(targets: Sequence[fixtures.Target], **values: Any) -> None:
    from sqlalchemy import update

    from webhooks.core.db import session_scope
    from webhooks.models import Endpoint

    with session_scope() as session:
        session.execute(
            update(Endpoint)
            .where(Endpoint.id.in_([target.endpoint_id for target in targets]))
            .values(values)
        )


def _consume(workers: Sequence[Worker]) -> None:
    for worker in workers:
        for queue in QUEUES:
            worker.consume(queue)


def _stop(workers: Sequence[Worker]) -> None:
    for worker in workers:
        for queue in QUEUES:
            worker.stop_consuming(queue)


def _backlog(targets: Sequence[fixtures.Target], per_target: int) -> None:
    for index in range(per_target * len(targets)):
        enqueue(targets, index)


def rate_accuracy(bench: Bench) -> None:
    rate, backlog = 20.0, (200 if bench.options.quick else 2_000)
    [target] = fixtures.make_targets(bench.receiver, "ctl-rate", 1, path=lambda _: "limited")
    _configure([target], rate_limit=rate)
    bench.truncate_history()
    bench.receiver.reset()
    with bench.workers(
        (ENGINE_APP, "gevent", "ctl-rate-1"), (ENGINE_APP, "gevent", "ctl-rate-2")
    ) as workers:
        _backlog([target], backlog)
        with sweeping(), bench.phase(SCENARIO, f"{backlog} at {rate:g}/s", workers) as phase:
            _consume(workers)
            done = fixtures.wait_for(
                lambda: bench.receiver.count() >= backlog, backlog / rate + 120, 0.2
            )
            phase.ops = bench.receiver.count()
        _stop(workers)
    times = sorted(at for _, path, at in bench.receiver.records() if path.startswith("/limited"))
    windows = _window_rates(times)
    worst = max((abs(r - rate) / rate for r in windows), default=None)
    note = (
        f"{len(times)} of {backlog} received by 2 workers; {len(windows)} full {WINDOW:g} s"
        f" windows: {', '.join(f'{r:.2f}' for r in windows)}/s"
        + ("" if done else "; not all received in time")
    )
    overall = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None
    bench.add(Figure(SCENARIO, "rate limit 20/s: overall", overall, "/s", rate, "limit"))
    bench.add(
        Figure(
            SCENARIO,
            "rate limit 20/s: worst 10 s window off by",
            None if worst is None else worst * 100,
            "%",
            target=Target("value_max", 5.0),
            note=note,
        )
    )


def _window_rates(times: Sequence[float]) -> list[float]:
    """Receipts per second in each full window from the first receipt on."""
    if not times:
        return []
    start, rates = times[0], []
    while start + WINDOW <= times[-1]:
        rates.append(sum(1 for t in times if start <= t < start + WINDOW) / WINDOW)
        start += WINDOW
    return rates


def _healthy_phase(
    bench: Bench,
    workers: Sequence[Worker],
    healthy: Sequence[fixtures.Target],
    rate: float,
    count: int,
    name: str,
) -> tuple[list[float], float | None]:
    """Send ``count`` events round robin to the healthy endpoints at ``rate``; their
    latencies (ms) and the worker CPU ms per healthy delivery."""
    bench.receiver.reset()
    with bench.phase(SCENARIO, name, workers) as phase:
        starts, _ = send_paced(count, rate, lambda index: enqueue(healthy, index))
        fixtures.wait_for(
            lambda: len(latencies_ms(bench.receiver.records(), starts, "/ok/")[0]) >= count,
            60 + count / rate,
            0.1,
        )
        phase.ops = count
    latencies, _ = latencies_ms(bench.receiver.records(), starts, "/ok/")
    cpu = phase.cpu.get("worker")
    return latencies, None if cpu is None else cpu * 1000 / count


def head_of_line(bench: Bench) -> None:
    quick = bench.options.quick
    waiting = 50 if quick else 2_000
    count = 60 if quick else bench.options.hol_events
    rate = bench.options.rate or bench.memo.get("latency_rate", {}).get("gevent") or 50.0
    healthy = fixtures.make_targets(bench.receiver, "ctl-ok", 40)
    limited = fixtures.make_targets(bench.receiver, "ctl-lim", 5, path=lambda _: "limited")
    broken = fixtures.make_targets(bench.receiver, "ctl-open", 5, path=lambda _: "hang")
    with bench.workers((ENGINE_APP, "gevent", "ctl-hol")) as workers, sweeping():
        bench.truncate_history()
        _consume(workers)
        alone, alone_cpu = _healthy_phase(bench, workers, healthy, rate, count, "healthy alone")
        _configure(limited, rate_limit=1.0)
        from webhooks.core import clock

        _configure(
            broken,
            circuit="open",
            circuit_failures=10,
            circuit_cooldown=600,
            circuit_until=clock.now() + timedelta(hours=1),
        )
        with bench.phase(SCENARIO, f"load {waiting} waiting x 10 endpoints", workers) as phase:
            _backlog([*limited, *broken], waiting)
            # Until the workers have seen every new delivery once (parked or given a slot).
            fixtures.wait_for(lambda: bench.scalar(_UNSEEN) < 20, 300, 0.5)
            phase.ops = waiting * 10
        hangs_before = bench.receiver.stats().hangs
        beside, beside_cpu = _healthy_phase(
            bench, workers, healthy, rate, count, "healthy beside controlled"
        )
        hangs = bench.receiver.stats().hangs - hangs_before
        parked = bench.scalar(
            "SELECT count(*) FROM deliveries WHERE next_attempt_at IS NULL"
            " AND status IN ('pending', 'retrying')"
        )
        _stop(workers)
    note = (
        f"{count} healthy events at {rate:.0f}/s; beside 5 x {waiting} rate-limited (1/s) and"
        f" 5 x {waiting} behind an open circuit; {parked} parked at the end, {hangs} requests"
        " to the open circuits' receiver"
    )
    bench.add(
        Figure(
            SCENARIO,
            "healthy p99 beside controlled",
            percentile(beside, 99),
            "ms",
            percentile(alone, 99),
            "alone",
            Target("ratio_max", 1.5),
            note=note,
        )
    )
    bench.add(
        Figure(
            SCENARIO,
            "worker CPU per healthy delivery",
            beside_cpu,
            "ms",
            alone_cpu,
            "alone",
            Target("ratio_max", 1.2),
        )
    )


def fifo_cost(bench: Bench) -> None:
    per_endpoint = 5 if bench.options.quick else 100
    rates = {}
    for ordering in ("none", "fifo"):
        targets = fixtures.make_targets(bench.receiver, f"ctl-{ordering}", 20)
        _configure(targets, ordering=ordering)
        bench.truncate_history()
        bench.receiver.reset()
        total = per_endpoint * len(targets)
        with bench.workers((ENGINE_APP, "gevent", f"ctl-{ordering}")) as workers, sweeping():
            _backlog(targets, per_endpoint)
            with bench.phase(SCENARIO, f"drain 20 x {per_endpoint} {ordering}", workers) as phase:
                _consume(workers)
                finished = fixtures.wait_for(_succeeded(bench, total), 300, 0.1)
                phase.ops = total
            _stop(workers)
        rates[ordering] = None if finished is None else total / phase.seconds
    bench.add(
        Figure(
            SCENARIO,
            "FIFO throughput (20 endpoints)",
            rates["fifo"],
            "/s",
            rates["none"],
            "unordered",
            note=f"{per_endpoint} deliveries per endpoint, preloaded; one worker (gevent)",
        )
    )


def _succeeded(bench: Bench, total: int) -> Callable[[], bool]:
    query = "SELECT count(*) FROM deliveries WHERE status = 'succeeded'"
    return lambda: bool(bench.scalar(query) >= total)


def run(bench: Bench) -> None:
    if "gevent" not in bench.options.pools:
        bench.add(Figure(SCENARIO, "controls", None, "", note="needs the gevent pool"))
        return
    rate_accuracy(bench)
    head_of_line(bench)
    fifo_cost(bench)
