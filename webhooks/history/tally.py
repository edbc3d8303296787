"""Counting attempts: how many, how many succeeded, PINGs apart, and a latency histogram that
adds up across hours.

A percentile cannot be added up from the percentiles of parts, so what is kept of each hour's
durations is a histogram. Durations under :data:`EXACT_BELOW` ms keep their exact value; above,
each doubling (32-63 ms, 64-127 ms, ...) is cut into 16 buckets, each at most 1/16 of its
lower bound wide. A percentile is then Postgres's ``percentile_cont`` over the values with
each bucket's values taken as evenly spread across it: exact while every value is exact
(counted live from the attempts), otherwise off by less than one bucket's width (under
6.25%). Counts are always exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Durations below this many ms are kept exactly.
EXACT_BELOW = 32
#: log2 of the buckets per doubling above :data:`EXACT_BELOW`.
_BUCKET_BITS = 4


def bucket(duration_ms: int) -> int:
    """The lower bound of the histogram bucket that holds ``duration_ms``."""
    if duration_ms < EXACT_BELOW:
        return duration_ms
    shift = duration_ms.bit_length() - (_BUCKET_BITS + 1)
    return (duration_ms >> shift) << shift


def width(lower: int) -> int:
    """How wide the bucket starting at ``lower`` is (0: an exact value)."""
    if lower < EXACT_BELOW:
        return 0
    return 1 << (lower.bit_length() - (_BUCKET_BITS + 1))


def histogram_percentile(
    counts: Mapping[int, int], fraction: float, *, bucketed: bool
) -> float | None:
    """``percentile_cont(fraction)`` of the values ``counts`` holds (exact value, or bucket's
    lower bound when ``bucketed`` → how many), a bucket's values evenly spread across it."""
    total = sum(counts.values())
    if not total:
        return None
    position = fraction * (total - 1)
    low = int(position)
    ranks = (low, min(low + 1, total - 1))
    values = []
    seen = 0
    keys = iter(sorted(counts))
    lower = next(keys)
    for rank in ranks:
        while rank >= seen + counts[lower]:
            seen += counts[lower]
            lower = next(keys)
        spread = width(lower) * (rank - seen + 0.5) / counts[lower] if bucketed else 0.0
        values.append(lower + spread)
    return values[0] + (values[1] - values[0]) * (position - low)


@dataclass
class Tally:
    """Attempts counted over some time: delivery attempts (PINGs apart) and their latency."""

    attempts: int = 0
    succeeded: int = 0
    pings: int = 0
    pings_succeeded: int = 0
    #: Duration (or bucket's lower bound once ``bucketed``) → delivery attempts.
    latency: Counter[int] = field(default_factory=Counter)
    #: Whether ``latency`` holds buckets rather than exact durations.
    bucketed: bool = False

    def count(self, *, ping: bool, ok: bool, duration_ms: int, times: int = 1) -> None:
        """Add ``times`` attempts alike."""
        if ping:
            self.pings += times
            self.pings_succeeded += times if ok else 0
            return
        self.attempts += times
        self.succeeded += times if ok else 0
        self.latency[bucket(duration_ms) if self.bucketed else duration_ms] += times

    def bucket_latency(self) -> None:
        """Turn exact durations into buckets, to be added to bucketed ones."""
        if not self.bucketed:
            buckets: Counter[int] = Counter()
            for duration, times in self.latency.items():
                buckets[bucket(duration)] += times
            self.latency, self.bucketed = buckets, True

    def add(self, other: Tally) -> None:
        """Count ``other``'s attempts too."""
        if other.bucketed:
            self.bucket_latency()
        self.attempts += other.attempts
        self.succeeded += other.succeeded
        self.pings += other.pings
        self.pings_succeeded += other.pings_succeeded
        if self.bucketed and not other.bucketed:
            for value, times in other.latency.items():
                self.latency[bucket(value)] += times
        else:
            self.latency.update(other.latency)

    def percentile(self, fraction: float) -> float | None:
        """A percentile of the delivery attempts' durations (None without any)."""
        return histogram_percentile(self.latency, fraction, bucketed=self.bucketed)

    def stored_latency(self) -> dict[str, int]:
        """The histogram as ``attempt_hours.latency`` keeps it (bucketed, string keys)."""
        self.bucket_latency()
        return {str(lower): times for lower, times in sorted(self.latency.items())}

    @classmethod
    def stored(
        cls,
        attempts: int,
        succeeded: int,
        pings: int,
        pings_succeeded: int,
        latency: Mapping[str, int],
    ) -> Tally:
        """An ``attempt_hours`` row's tally."""
        histogram = Counter({int(lower): times for lower, times in latency.items()})
        return cls(attempts, succeeded, pings, pings_succeeded, histogram, bucketed=True)
