"""The hourly rollup of attempts on Postgres: what the stats and charts read from it is what a
live count over the same window says (exact counts, the current partial hour included;
percentiles within a histogram bucket), beat's roll-up and a reader's fill agree, and
retention purges the rollup with the rest of the history."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.history_fixtures import make_attempt, make_delivery, make_endpoint
from webhooks.core import clock
from webhooks.core.config import get_settings
from webhooks.core.db import get_engine, new_session
from webhooks.history import rollup
from webhooks.history.queries import Window, attempt_succeeded
from webhooks.history.retention import purge
from webhooks.history.series import attempt_series, stats_and_series
from webhooks.history.stats import WINDOWS, endpoint_stats, window_stats
from webhooks.models import Attempt, AttemptHour, Endpoint, RolledUpHour, Tenant

#: 20 minutes into an hour: the hour before has settled, the current one is partial.
NOW = rollup.hour_of(clock.now()) - timedelta(hours=2) + timedelta(minutes=20, seconds=7)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[datetime]:
    monkeypatch.setattr(clock, "now", lambda: NOW)
    yield NOW


def _history(session: Session, endpoint: Endpoint, hours: int, every: timedelta) -> None:
    """Attempts every ``every`` over the last ``hours`` (up to a minute ago), of varied
    durations and outcomes, with a PING each hour."""
    delivery = make_delivery(session, endpoint, at=NOW - timedelta(hours=hours), status="retrying")
    numbers = itertools.count(1)
    at = NOW - timedelta(hours=hours)
    step = 0
    while at < NOW - timedelta(minutes=1):
        status, error = (
            (None, "timeout") if step % 23 == 0 else (500 if step % 7 == 0 else 200, None)
        )
        duration = 20 + (step * 7919) % 900
        make_attempt(session, endpoint, at=at, status=status, error=error, duration_ms=duration,
                     delivery=delivery, number=next(numbers))  # fmt: skip
        if step % 9 == 0:
            make_attempt(session, endpoint, at=at, status=200 if step % 2 else 503, duration_ms=5)
        at += every
        step += 1
    make_attempt(
        session,
        endpoint,
        at=NOW,
        status=200,
        duration_ms=33,
        delivery=delivery,
        number=next(numbers),
    )  # fmt: skip  (this very moment: the last bucket's end)
    session.commit()


def _live(
    session: Session, endpoint_id: str, since: datetime, until: datetime | None
) -> tuple[Any, Any]:
    """Counts and percentile_cont straight from ``attempts``: what the rollup must match."""
    where = [Attempt.endpoint_id == endpoint_id, Attempt.started_at >= since]
    if until is not None:
        where.append(Attempt.started_at <= until)
    deliveries = [*where, Attempt.delivery_id.is_not(None)]
    return session.execute(
        select(
            func.count(),
            func.count().filter(attempt_succeeded()),
            func.percentile_cont(0.5).within_group(Attempt.duration_ms),
            func.percentile_cont(0.95).within_group(Attempt.duration_ms),
        ).where(*deliveries)
    ).one(), session.execute(
        select(func.count(), func.count().filter(attempt_succeeded())).where(
            *where, Attempt.delivery_id.is_(None)
        )
    ).one()


def _close(measured: float | None, exact: float) -> bool:
    """Within one histogram bucket (at most 1/16 of the value), after rounding to whole ms."""
    return measured is not None and abs(measured - exact) <= exact / 16 + 1


def test_window_stats_from_the_rollup_equal_a_live_count(
    session: Session, tenant: Tenant, frozen: datetime
) -> None:
    busy = make_endpoint(session, tenant, "https://busy.example/")
    quiet = make_endpoint(session, tenant, "https://quiet.example/")
    _history(session, busy, 30, timedelta(minutes=7))
    _history(session, quiet, 3, timedelta(minutes=50))

    for endpoint in (busy, quiet):
        for name, length in WINDOWS.items():
            since = NOW - length
            stats = window_stats(session, endpoint.id, Window(since, None))
            (total, ok, p50, p95), (pings, pings_ok) = _live(session, endpoint.id, since, None)
            assert (stats.attempts, stats.succeeded_attempts) == (total, ok), name
            assert (stats.pings.attempts, stats.pings.succeeded) == (pings, pings_ok), name
            assert _close(stats.latency_ms.p50, p50) and _close(stats.latency_ms.p95, p95), name
    # The 24 h and 7 d windows were read from settled hours rolled up on the way (by the
    # reader: beat is not running), the current hour and the one before it live.
    rolled = set(session.scalars(select(RolledUpHour.hour)))
    assert rollup.hour_of(NOW) - timedelta(hours=1) in rolled
    assert rollup.hour_of(NOW) not in rolled
    last = max(rolled) + rollup.HOUR - timedelta(microseconds=1)
    counted = [_live(session, endpoint.id, min(rolled), last)[0][0] for endpoint in (busy, quiet)]
    assert session.scalar(select(func.sum(AttemptHour.attempts))) == sum(counted)


def test_the_last_hour_is_exact_as_it_is_read_live(
    session: Session, tenant: Tenant, frozen: datetime
) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/")
    _history(session, endpoint, 2, timedelta(minutes=3))
    stats = window_stats(session, endpoint.id, Window(NOW - timedelta(hours=1), None))
    (total, ok, p50, p95), _ = _live(session, endpoint.id, NOW - timedelta(hours=1), None)
    assert (stats.attempts, stats.succeeded_attempts) == (total, ok)
    assert (stats.latency_ms.p50, stats.latency_ms.p95) == (round(p50), round(p95))


@pytest.mark.parametrize("span", ["1h", "24h", "7d"])
def test_chart_buckets_add_up_to_a_live_count_pings_left_out(
    session: Session, tenant: Tenant, frozen: datetime, span: str
) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/")
    _history(session, endpoint, 30, timedelta(minutes=11))
    buckets = attempt_series(session, endpoint.id, span, until=NOW)
    (total, ok, _, _), (pings, _) = _live(session, endpoint.id, buckets[0].start, NOW)
    assert pings > 0
    assert sum(bucket.attempts for bucket in buckets) == total
    assert sum(bucket.succeeded for bucket in buckets) == ok
    # Each bucket on its own, too: the current, partial one included.
    step = buckets[1].start - buckets[0].start
    for bucket in (buckets[0], buckets[-2], buckets[-1]):
        end = min(bucket.start + step - timedelta(microseconds=1), NOW)
        (total, ok, p50, _), _ = _live(session, endpoint.id, bucket.start, end)
        assert (bucket.attempts, bucket.succeeded) == (total, ok)
        if total:
            assert _close(bucket.latency_ms.p50, p50)


def test_beat_rolls_up_settled_hours_once_and_a_reader_then_rolls_up_nothing(
    session: Session, tenant: Tenant, frozen: datetime
) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/")
    _history(session, endpoint, 5, timedelta(minutes=13))
    assert rollup.roll_up(most=3) == 3  # the newest three settled hours
    done = sorted(session.scalars(select(RolledUpHour.hour)))
    horizon = rollup.horizon(NOW)
    assert done == [horizon - timedelta(hours=n) for n in (3, 2, 1)]
    # The rest of the lookback (empty hours, all of them: 8 days) in one more run.
    assert rollup.roll_up(most=1000) == int(rollup.LOOKBACK / rollup.HOUR) - 3
    assert rollup.roll_up() == 0
    before = session.scalar(select(func.count()).select_from(RolledUpHour))
    stats = window_stats(session, endpoint.id, Window(NOW - timedelta(days=7), None))
    assert session.scalar(select(func.count()).select_from(RolledUpHour)) == before
    (total, _, _, _), _ = _live(session, endpoint.id, NOW - timedelta(days=7), None)
    assert stats.attempts == total
    # Every delivery attempt of the settled hours is in the rollup, once; a second fill of
    # an hour (beat and a reader at once) counts it again and writes nothing.
    first = rollup.hour_of(horizon - rollup.LOOKBACK)
    settled = _live(session, endpoint.id, first, horizon - timedelta(microseconds=1))[0][0]
    rolled = select(func.sum(AttemptHour.attempts))
    assert session.scalar(rolled) == settled
    again = rollup.fill(get_engine(), [horizon - timedelta(hours=1)])
    assert sum(tally.attempts for tally in again.values()) > 0
    with new_session() as check:
        assert check.scalar(rolled) == settled


def test_retention_purges_the_rolled_up_hours_past_it(session: Session, tenant: Tenant) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/")
    now = clock.now()
    old, recent = now - timedelta(days=31), now - timedelta(days=2)
    for at in (old, recent):
        done = make_delivery(session, endpoint, at=at, status="succeeded")
        make_attempt(session, endpoint, at=at, delivery=done)
    session.commit()
    rollup.fill(get_engine(), [rollup.hour_of(old), rollup.hour_of(recent)])
    assert session.scalar(select(func.count()).select_from(AttemptHour)) == 2

    purged = purge()
    assert purged.attempt_hours == 1
    with new_session() as check:
        assert list(check.scalars(select(AttemptHour.hour))) == [rollup.hour_of(recent)]
        assert list(check.scalars(select(RolledUpHour.hour))) == [rollup.hour_of(recent)]


def test_an_attempt_at_the_very_end_of_a_chart_on_the_hour_counts(
    session: Session, tenant: Tenant, frozen: datetime
) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/")
    end = rollup.horizon(NOW) - rollup.HOUR  # on the hour, its last hour rolled up
    delivery = make_delivery(session, endpoint, at=end - timedelta(hours=2), status="retrying")
    for number, at in enumerate((end - timedelta(minutes=30), end), start=1):
        make_attempt(session, endpoint, at=at, delivery=delivery, number=number)
    session.commit()
    buckets = attempt_series(session, endpoint.id, "24h", until=end)
    assert buckets[-1].start == end - rollup.HOUR
    assert buckets[-1].attempts == 2


def test_beat_rolls_up_nothing_the_retention_would_purge(
    session: Session, frozen: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setenv("WEBHOOKS_HISTORY_RETENTION_DAYS", "1")
        get_settings.cache_clear()
        try:
            rollup.roll_up(most=1000)
        finally:
            patched.undo()
            get_settings.cache_clear()
    oldest = session.scalar(select(func.min(RolledUpHour.hour)))
    assert oldest == rollup.hour_of(NOW - timedelta(days=1)) + rollup.HOUR


@pytest.mark.parametrize("span", ["1h", "24h", "7d"])
def test_stats_and_chart_counted_together_equal_the_two_apart(
    session: Session, tenant: Tenant, frozen: datetime, span: str
) -> None:
    # The stats' window starts (20 minutes into an hour) split the chart's hours; an hour so
    # split is read live, yet its bucket's percentiles stay the rollup's, as the chart's alone.
    endpoint = make_endpoint(session, tenant, "https://receiver.example/")
    _history(session, endpoint, 7 * 24 + 8, timedelta(minutes=13))
    stats, buckets = stats_and_series(session, endpoint, span, until=NOW)
    assert stats == endpoint_stats(session, endpoint)
    assert buckets == attempt_series(session, endpoint.id, span, until=NOW)
    assert sum(bucket.attempts for bucket in buckets) > 0
