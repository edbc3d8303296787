"""Retry policy: the default schedule and its jitter, custom schedules, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from webhooks.delivery.retry import (
    DEFAULT_SCHEDULE,
    MAX_RETRY_AFTER,
    next_delay,
    parse_retry_after,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def delays(schedule: list[int] | None, rng: random.Random) -> list[float]:
    """Every delay of a delivery that never succeeds."""
    found = []
    attempts = 1
    while (delay := next_delay(schedule, attempts, retry_after=None, rng=rng)) is not None:
        found.append(delay)
        attempts += 1
    return found


def test_default_schedule_spans_seconds_to_days() -> None:
    assert DEFAULT_SCHEDULE[0] <= 10
    assert max(DEFAULT_SCHEDULE) >= 3600
    assert 86_400 <= sum(DEFAULT_SCHEDULE) <= 3 * 86_400
    assert list(DEFAULT_SCHEDULE) == sorted(DEFAULT_SCHEDULE)


@pytest.mark.parametrize("seed", range(20))
def test_default_schedule_jitter_stays_within_20_percent(seed: int) -> None:
    found = delays(None, random.Random(seed))
    assert len(found) == len(DEFAULT_SCHEDULE)
    for delay, nominal in zip(found, DEFAULT_SCHEDULE, strict=True):
        assert nominal * 0.8 <= delay <= nominal * 1.2


def test_jitter_actually_spreads() -> None:
    rng = random.Random(1)
    first = {next_delay(None, 1, retry_after=None, rng=rng) for _ in range(50)}
    assert len(first) > 40
    assert min(first) < 4.5 and max(first) > 5.5  # type: ignore[operator]


def test_custom_schedule_is_used_verbatim() -> None:
    assert delays([0, 60, 0], random.Random(0)) == [0, 60, 0]


def test_empty_schedule_means_one_attempt() -> None:
    assert next_delay([], 1, retry_after=None, rng=random.Random(0)) is None


def test_retry_after_lengthens_but_never_shortens_the_wait() -> None:
    rng = random.Random(0)
    assert next_delay([10], 1, retry_after=120, rng=rng) == 120
    assert next_delay([10], 1, retry_after=3, rng=rng) == 10


def test_retry_after_is_capped() -> None:
    delay = next_delay([0], 1, retry_after=7 * 86_400, rng=random.Random(0))
    assert delay == MAX_RETRY_AFTER


def test_retry_after_adds_no_attempt() -> None:
    assert next_delay([1], 2, retry_after=30, rng=random.Random(0)) is None


def test_parse_retry_after_seconds() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(" 0 ", NOW) == 0


def test_parse_retry_after_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, NOW) == 90
    earlier = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(earlier, NOW) == 0
    assert parse_retry_after("Sun, 22 Nov 2026 10:01:00 -0000", NOW) == 60


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "12 monkeys", "\u0661\u0662"])
def test_parse_retry_after_ignores_garbage(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None
