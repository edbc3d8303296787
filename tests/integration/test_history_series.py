"""What the console's charts and health columns read: attempts per interval, and each
endpoint's attempt summary, the same on Postgres and SQLite (counted live there; the
rollup's side is in test_history_rollup.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.integration.history_fixtures import make_attempt, make_delivery, make_endpoint
from webhooks.admin.tenants import create_tenant
from webhooks.core import clock
from webhooks.history import rollup
from webhooks.history.queries import Window
from webhooks.history.series import attempt_series
from webhooks.history.stats import attempt_summaries
from webhooks.models import Base

NOW = clock.now().replace(minute=30, second=0, microsecond=0)


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request: pytest.FixtureRequest, session: Session) -> Iterator[Session]:
    if request.param == "postgresql":
        yield session
        return
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as lite:
        yield lite
    engine.dispose()


def test_attempts_per_interval_split_by_outcome_with_latency(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counted live on Postgres too, whatever the wall clock: an hour of these attempts that has
    # settled by the time the test runs would otherwise come from the rollup, whose
    # percentiles are its histogram's (102 ms for 100).
    monkeypatch.setattr(rollup, "SETTLE", timedelta(days=30))
    tenant = create_tenant(db, "acme")
    endpoint = make_endpoint(db, tenant, "https://receiver.example/")
    quiet = make_endpoint(db, tenant, "https://quiet.example/")
    # Attempts of one delivery (numbered 1..n): PINGs would be left out of the summaries.
    sent = make_delivery(db, endpoint, at=NOW - timedelta(hours=3), status="retrying")
    numbers = itertools.count(1)
    for minutes, status, duration in ((50, 200, 100), (50, 500, 300), (10, 200, 40)):
        make_attempt(db, endpoint, at=NOW - timedelta(minutes=minutes), status=status,
                     duration_ms=duration, delivery=sent, number=next(numbers))  # fmt: skip
    make_attempt(
        db, endpoint, at=NOW - timedelta(hours=2), status=200, duration_ms=5, delivery=sent,
        number=next(numbers),
    )  # fmt: skip
    db.commit()

    buckets = attempt_series(db, endpoint.id, "1h", until=NOW)
    assert len(buckets) == 12 and buckets[0].start == NOW - timedelta(hours=1)
    counted = {b.start: (b.succeeded, b.failed) for b in buckets if b.attempts}
    assert counted == {
        NOW - timedelta(minutes=50): (1, 1),
        NOW - timedelta(minutes=10): (1, 0),
    }
    [busy] = [b for b in buckets if b.attempts == 2]
    assert busy.success_rate == 0.5
    assert (busy.latency_ms.p50, busy.latency_ms.p95) == (200.0, pytest.approx(290.0))
    assert buckets[1].latency_ms.p50 is None and buckets[1].success_rate is None
    assert sum(b.attempts for b in attempt_series(db, endpoint.id, "24h", until=NOW)) == 4
    assert len(attempt_series(db, endpoint.id, "7d", until=NOW)) == 28

    summaries = attempt_summaries(db, [endpoint.id, quiet.id], Window(NOW - timedelta(hours=1)))
    assert (summaries[endpoint.id].attempts, summaries[endpoint.id].succeeded) == (3, 2)
    assert summaries[endpoint.id].latency_ms.p50 == 100.0
    assert summaries[quiet.id].attempts == 0 and summaries[quiet.id].success_rate is None
