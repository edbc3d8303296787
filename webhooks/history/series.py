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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.history.intervals import grouped_tallies, interval_tallies
from webhooks.history.stats import EndpointStats, Latency, endpoint_stats, window_starts
from webhooks.history.tally import Tally
from webhooks.models import Endpoint

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


def _buckets(starts: Sequence[datetime], tallies: Sequence[Tally]) -> list[Bucket]:
    return [
        Bucket(
            start,
            tally.succeeded,
            tally.attempts - tally.succeeded,
            Latency.of(tally.percentile(0.5), tally.percentile(0.95)),
        )
        for start, tally in zip(starts, tallies, strict=True)
    ]


def attempt_series(
    session: Session, endpoint_id: str, span: str, *, until: datetime | None = None
) -> list[Bucket]:
    """The buckets of ``span`` (a key of :data:`SPANS`) up to ``until`` (default now)."""
    end = clock.now() if until is None else until
    starts = interval_starts(span, end)
    return _buckets(starts, interval_tallies(session, [endpoint_id], starts, end)[endpoint_id])


def stats_and_series(
    session: Session, endpoint: Endpoint, span: str, *, until: datetime | None = None
) -> tuple[EndpointStats, list[Bucket]]:
    """:func:`~webhooks.history.stats.endpoint_stats` at ``until`` (default now) and
    :func:`attempt_series` of ``span`` up to it, the attempts of both counted at once
    (:func:`~webhooks.history.intervals.grouped_tallies`): what an endpoint's console page
    shows, reading the rollup once rather than once for the stats and again for the chart.
    The same figures as the two apart, but for attempts started after ``until``, which the
    stats counted up to when they ran."""
    end = clock.now() if until is None else until
    starts = interval_starts(span, end)
    groups = [*window_starts(end), starts]
    *windows, chart = grouped_tallies(session, [endpoint.id], groups, end)[endpoint.id]
    stats = endpoint_stats(session, endpoint, now=end, tallies=[group[0] for group in windows])
    return stats, _buckets(starts, chart)
