"""Worker memory over a long run: RSS growth of the engine's gevent worker.

The harness feeds events continuously (keeping at most a few thousand undelivered) while the
worker delivers them, and samples the worker's RSS from ``/proc`` every second. Growth is
measured from the first sample after 10% of the deliveries — imports, pools and caches are
warm by then — to the last; the target is under 10% over 100,000 deliveries. The
sustained rate with a live producer on the same two cores comes out as a by-product.
"""

from __future__ import annotations

import time

from bench import fixtures
from bench.context import Bench
from bench.pools import ENGINE_APP
from bench.scenarios.common import enqueue
from bench.stats import Figure, Target
from webhooks.broker.publishing import DELIVERIES_QUEUE

BACKLOG = 2_000
BATCH = 50
MIB = 1024 * 1024


def run(bench: Bench) -> None:
    total = bench.options.rss_deliveries
    targets = fixtures.make_targets(bench.receiver, "rss", bench.options.endpoints)
    bench.truncate_history()
    bench.receiver.reset()
    samples: list[list[float]] = []
    with bench.workers((ENGINE_APP, "gevent", "engine-gevent")) as (worker,):
        worker.consume(DELIVERIES_QUEUE)
        with bench.phase("rss", f"engine (gevent), live feed of {total}", [worker]) as phase:
            started = time.monotonic()
            sent = received = 0
            next_sample = started
            deadline = started + 300 + total / 5
            while received < total and time.monotonic() < deadline:
                if sent < total and sent - received < BACKLOG:
                    for _ in range(min(BATCH, total - sent)):
                        enqueue(targets, sent)
                        sent += 1
                else:
                    time.sleep(0.05)
                received = bench.receiver.count()
                if time.monotonic() >= next_sample:
                    samples.append([received, worker.rss() / MIB, time.monotonic() - started])
                    next_sample += 1.0
            samples.append([received, worker.rss() / MIB, time.monotonic() - started])
            phase.ops = received
        worker.stop_consuming(DELIVERIES_QUEUE)
    bench.series["rss"] = samples
    warm = next((s for s in samples if s[0] >= total * 0.1), samples[0])
    final = samples[-1]
    peak = max(s[1] for s in samples)
    growth = (final[1] - warm[1]) / warm[1] * 100 if warm[1] else None
    bench.add(
        Figure(
            "rss",
            f"worker RSS growth over {received:,} deliveries (gevent)",
            growth,
            "%",
            target=Target("value_max", 10.0),
            note=f"{warm[1]:.0f} MiB after {warm[0]:,} → {final[1]:.0f} MiB (peak {peak:.0f})",
        )
    )
    bench.add(
        Figure(
            "rss",
            "sustained rate with a live producer (gevent)",
            received / phase.seconds if phase.seconds else None,
            "deliveries/s",
        )
    )
