"""The sweeper on a long honest backlog: what a sweep costs, and what it republishes.

50,000 deliveries (2.5 times ``--size``), each published once and still waiting in the broker
(no worker consumes), as behind a slow fleet. The sweeper must republish none of them,
however often it runs. Timed, in the same run:

- sweeps of the backlog (wall time, the sweeping process's CPU, Postgres's CPU) against the
  same sweeps with nothing open, the fixed cost of a sweep (the baseline);
- what the previous rule (republish a stamp older than ``WEBHOOKS_REPUBLISH_AFTER_SECONDS``)
  would publish on the same backlog once it is that old (counted in a rolled-back
  transaction: nothing is sent);
- one sweep after the broker lost everything (``FLUSHDB``): what it republishes and how long
  it takes (a sweep publishes at most ``BATCH * MAX_BATCHES``; the next ones carry on).
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import text

from bench import fixtures
from bench.context import Bench
from bench.stats import Figure, Target

SWEEPS = 5


def _backlog(bench: Bench, count: int) -> None:
    """``count`` pending deliveries, stamped one by one a minute ago, one message each."""
    from webhooks.broker.publishing import DeliveryRef, publish
    from webhooks.core.db import get_engine

    [target] = fixtures.make_targets(bench.receiver, "sweep", 1)
    with get_engine().begin() as connection:
        connection.execute(
            text(
                """
                INSERT INTO events (id, tenant_id, type, data, timestamp, created_at)
                SELECT 'evt_sweep' || lpad(g::text, 8, '0'), :tenant, :type, '{}'::jsonb,
                       now(), now()
                FROM generate_series(1, :count) AS g;
                INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, status, attempts,
                                        next_attempt_at, locked_until, created_at, updated_at)
                SELECT 'dlv_sweep' || lpad(g::text, 8, '0'), :tenant,
                       'evt_sweep' || lpad(g::text, 8, '0'), :endpoint, 'pending', 0,
                       now() - interval '1 minute', now() - interval '1 minute'
                       + g * interval '1 microsecond', now(), now()
                FROM generate_series(1, :count) AS g
                """
            ),
            {
                "tenant": target.tenant_id,
                "endpoint": target.endpoint_id,
                "type": fixtures.EVENT_TYPE,
                "count": count,
            },
        )
    refs = [
        DeliveryRef(f"dlv_sweep{number:08d}", target.endpoint_id, fixtures.EVENT_TYPE)
        for number in range(1, count + 1)
    ]
    for start in range(0, count, 1000):
        assert publish(refs[start : start + 1000]) == len(refs[start : start + 1000])


def _sweeps(bench: Bench, name: str) -> tuple[float, float, int]:
    """Run :data:`SWEEPS` sweeps; per sweep: wall ms, this process's CPU ms, and published."""
    from webhooks.delivery import sweeper

    published = 0
    with bench.phase("sweep", name) as phase:
        cpu = time.process_time()
        for _ in range(SWEEPS):
            published += sweeper.sweep()
        cpu = time.process_time() - cpu
        phase.ops = SWEEPS
    return phase.seconds * 1000 / SWEEPS, cpu * 1000 / SWEEPS, published


def _window_rule_would_publish(republish_after: timedelta) -> int:
    """What the previous rule selects on this backlog once its stamps are that old."""
    from webhooks.core import clock
    from webhooks.core.db import new_session
    from webhooks.delivery import sweeper

    later = clock.now() + republish_after
    with new_session() as session:
        refs = sweeper.due_for_publishing(
            session,
            now=later,
            limit=sweeper.BATCH * sweeper.MAX_BATCHES,
            held=None,
            stamped_before=later,
            republish_after=republish_after,
        )
        session.rollback()
    return len(refs)


def run(bench: Bench) -> None:
    from webhooks.core.config import get_settings
    from webhooks.delivery import sweeper

    count = 2_000 if bench.options.quick else bench.options.size * 5 // 2
    bench.truncate_history()
    bench.env.flush_redis()
    empty_ms, empty_cpu, _ = _sweeps(bench, "sweeps, nothing open")
    _backlog(bench, count)
    backlog_ms, backlog_cpu, republished = _sweeps(bench, f"sweeps, {count:,} queued")
    bench.add(
        Figure(
            "sweep",
            f"sweep of a {count:,}-message honest backlog",
            backlog_ms,
            "ms",
            baseline=empty_ms,
            baseline_name="sweep, nothing open",
            note=f"CPU {backlog_cpu:.0f} ms/sweep in the sweeper vs {empty_cpu:.0f} ms",
        )
    )
    bench.add(
        Figure(
            "sweep",
            f"messages republished by {SWEEPS} sweeps of that backlog",
            republished,
            "messages",
            target=Target("value_max", 1),
        )
    )
    window = timedelta(seconds=get_settings().republish_after_seconds)
    bench.add(
        Figure(
            "sweep",
            f"previous rule: one sweep of it once {window.seconds} s old would republish",
            _window_rule_would_publish(window),
            "messages",
            note=f"at most {sweeper.BATCH * sweeper.MAX_BATCHES:,} per sweep",
        )
    )
    bench.env.flush_redis()
    with bench.phase("sweep", f"sweep after FLUSHDB, {count:,} lost") as phase:
        phase.ops = sweeper.sweep()
    bench.add(
        Figure(
            "sweep",
            "one sweep after FLUSHDB: republished",
            phase.ops,
            "messages",
            note=f"in {phase.seconds:.2f} s",
        )
    )
    bench.truncate_history()
    bench.env.flush_redis()
