"""Pure helpers of the history: id bounds of a time window, percentiles as Postgres does,
from exact values or from the rollup's histogram buckets."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from webhooks.core.ids import ulid
from webhooks.history.queries import id_floor
from webhooks.history.tally import EXACT_BELOW, Tally, bucket, histogram_percentile, width


def test_id_floor_sorts_before_every_id_of_that_millisecond_and_after_earlier_ones() -> None:
    at = datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)
    ms = int(at.timestamp() * 1000)
    floor = id_floor("dlv", at)
    assert floor == f"dlv_{ulid(ms)[:10]}{'0' * 16}"
    for _ in range(50):
        assert (
            f"dlv_{ulid(ms - 1)}"
            < floor
            <= f"dlv_{ulid(ms)}"
            < id_floor("dlv", at + timedelta(milliseconds=1))
        )


def percentile_cont(values: list[int], fraction: float) -> float:
    """Postgres's ``percentile_cont``, spelled out: linear between the closest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def exact(values: list[int], fraction: float) -> float | None:
    return histogram_percentile(Counter(values), fraction, bucketed=False)


def test_percentile_of_exact_values_is_percentile_cont() -> None:
    assert exact([], 0.5) is None
    assert exact([7], 0.95) == 7.0
    assert exact([300, 100, 200, 1000, 10000], 0.5) == 300.0
    assert exact([100, 200, 300, 1000, 10000], 0.95) == pytest.approx(8200.0)
    sample = random.Random(7)
    for _ in range(50):
        values = [sample.randrange(0, 5000) for _ in range(sample.randrange(1, 300))]
        for fraction in (0.5, 0.95):
            assert exact(values, fraction) == pytest.approx(percentile_cont(values, fraction))


def test_buckets_are_exact_below_32_ms_then_16_per_doubling_at_most_a_16th_wide() -> None:
    assert [bucket(ms) for ms in (0, 5, EXACT_BELOW - 1)] == [0, 5, 31]
    assert width(31) == 0
    for ms in range(EXACT_BELOW, 70_000):
        lower = bucket(ms)
        assert lower <= ms < lower + width(lower)
        assert width(lower) <= lower / 16
        assert bucket(lower) == lower
    assert len({bucket(ms) for ms in range(64, 128)}) == 16


def test_bucketed_percentiles_are_within_a_bucket_of_the_exact_ones() -> None:
    sample = random.Random(11)
    for _ in range(50):
        values = [int(sample.lognormvariate(5, 1.2)) for _ in range(sample.randrange(1, 2000))]
        tally = Tally()
        for value in values:
            tally.count(ping=False, ok=True, duration_ms=value)
        tally.bucket_latency()
        for fraction in (0.5, 0.95):
            true = percentile_cont(values, fraction)
            assert tally.percentile(fraction) == pytest.approx(true, rel=1 / 16, abs=1)


def test_tallies_add_up_counts_exactly_and_pings_apart() -> None:
    live, stored = Tally(), Tally(bucketed=True)
    live.count(ping=False, ok=True, duration_ms=100, times=3)
    live.count(ping=False, ok=False, duration_ms=10_000)
    live.count(ping=True, ok=False, duration_ms=7, times=2)
    stored.count(ping=False, ok=True, duration_ms=101)
    stored.count(ping=True, ok=True, duration_ms=5)
    assert live.percentile(0.5) == 100.0 and not live.bucketed
    again = Tally.stored(1, 1, 1, 1, stored.stored_latency())
    live.add(again)
    assert (live.attempts, live.succeeded, live.pings, live.pings_succeeded) == (5, 4, 3, 1)
    assert live.bucketed and sum(live.latency.values()) == 5
    assert live.latency[bucket(100)] == 4 and live.latency[bucket(10_000)] == 1
