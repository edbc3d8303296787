"""An endpoint's attempts over time, in equal intervals: what the console's charts draw.

For each interval of a span (the last hour in 5-minute steps, the last day in hours, the last
week in 6-hour steps): delivery attempts that succeeded and failed, and the p50/p95 of their
durations. PINGs are left out, as the stats leave them out of the success rate and latency.
Intervals are on the clock (UTC hours; 00:00, 06:00, 12:00 and 18:00 for the week), the last
one the interval ``until`` falls in, counted up to ``until``: so every whole hour of a day or
week chart is one rolled-up row (:mod:`webhooks.history.intervals`), and only the current
hour is read live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.history.intervals import interval_tallies
from webhooks.history.stats import Latency

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


def interval_starts(span: str, until: datetime) -> list[datetime]:
    """The starts of ``span``'s intervals, on the clock, the last one holding ``until``."""
    length, step = SPANS[span]
    seconds = step.total_seconds()
    boundary = -(-until.timestamp() // seconds) * seconds  # the first at or after until
    last = datetime.fromtimestamp(boundary, UTC) - step
    count = int(length / step)
    return [last - step * (count - 1 - number) for number in range(count)]


def attempt_series(
    session: Session, endpoint_id: str, span: str, *, until: datetime | None = None
) -> list[Bucket]:
    """The buckets of ``span`` (a key of :data:`SPANS`) up to ``until`` (default now)."""
    end = clock.now() if until is None else until
    starts = interval_starts(span, end)
    tallies = interval_tallies(session, [endpoint_id], starts, end)[endpoint_id]
    return [
        Bucket(
            start,
            tally.succeeded,
            tally.attempts - tally.succeeded,
            Latency.of(tally.percentile(0.5), tally.percentile(0.95)),
        )
        for start, tally in zip(starts, tallies, strict=True)
    ]
