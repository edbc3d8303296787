"""Pure helpers of the history: id bounds of a time window, percentiles as Postgres does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from webhooks.core.ids import ulid
from webhooks.history.queries import id_floor
from webhooks.history.stats import percentile


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


def test_percentile_interpolates_like_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([300.0, 100.0, 200.0, 1000.0, 10000.0], 0.5) == 300.0
    assert percentile([100.0, 200.0, 300.0, 1000.0, 10000.0], 0.95) == pytest.approx(8200.0)
