"""An endpoint's attempts over time, in equal intervals: what the console's charts draw.

For each interval of a span (the last hour in 5-minute steps, the last day in hours, the last
week in 6-hour steps): attempts that succeeded and failed, and the p50/p95 of their durations.
On Postgres the grouping and the percentiles are one query on the ``(endpoint_id, id)`` index
from the span's start (the id bound of :class:`~webhooks.history.queries.Window`); on SQLite the
rows are fetched and grouped here, as :mod:`webhooks.history.stats` does.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.history.queries import RECORDING_SLACK, Window, attempt_succeeded
from webhooks.history.stats import Latency, percentile
from webhooks.models import Attempt

#: span name → (length, interval)
SPANS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
}


@dataclass(frozen=True)
class Bucket:
    """One interval's attempts."""

    start: datetime
    succeeded: int
    failed: int
    latency_ms: Latency

    @property
    def attempts(self) -> int:
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None


def attempt_series(
    session: Session, endpoint_id: str, span: str, *, until: datetime | None = None
) -> list[Bucket]:
    """The buckets of ``span`` (a key of :data:`SPANS`) ending at ``until`` (default now)."""
    length, step = SPANS[span]
    end = clock.now() if until is None else until
    count = int(length / step)
    start = end - step * count
    where = (
        Attempt.endpoint_id == endpoint_id,
        *Window(start, end).conditions(Attempt.id, Attempt.started_at, "att", RECORDING_SLACK),
    )
    seconds = step.total_seconds()
    rows: dict[int, tuple[int, int, float | None, float | None]] = {}
    if session.get_bind().dialect.name == "postgresql":
        offset = func.extract("epoch", Attempt.started_at) - start.timestamp()
        index = func.floor(cast(offset, Float) / seconds).label("bucket")
        query = (
            select(
                index,
                func.count(),
                func.count().filter(attempt_succeeded()),
                func.percentile_cont(0.5).within_group(Attempt.duration_ms),
                func.percentile_cont(0.95).within_group(Attempt.duration_ms),
            )
            .where(*where)
            .group_by(index)
        )
        for bucket, total, ok, p50, p95 in session.execute(query):
            rows[int(bucket)] = (total, ok, p50, p95)
    else:
        grouped: dict[int, list[tuple[float, bool]]] = defaultdict(list)
        query = select(Attempt.started_at, Attempt.duration_ms, attempt_succeeded()).where(*where)
        for started_at, duration, ok in session.execute(query):
            bucket = int((started_at - start).total_seconds() // seconds)
            grouped[bucket].append((float(duration), bool(ok)))
        for bucket, values in grouped.items():
            durations = [duration for duration, _ in values]
            succeeded = sum(ok for _, ok in values)
            p50, p95 = percentile(durations, 0.5), percentile(durations, 0.95)
            rows[bucket] = (len(values), succeeded, p50, p95)
    buckets = []
    for number in range(count):
        total, ok, p50, p95 = rows.get(number, (0, 0, None, None))
        buckets.append(Bucket(start + step * number, ok, total - ok, Latency.of(p50, p95)))
    return buckets
