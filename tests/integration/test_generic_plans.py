"""The history's reads of ``attempts`` run on generic plans prepared once per connection
(:func:`webhooks.core.prepared.generic`), on Postgres with several daily partitions: the
same rows as the query planned per call, including an attempt made today of a delivery
created weeks ago (a retry, a redelivery) and a PING (the default partition)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import literal_column, select, text
from sqlalchemy.orm import Session

from tests.integration.history_fixtures import make_attempt, make_delivery, make_endpoint
from webhooks.admin.tenants import create_tenant
from webhooks.core import clock, prepared
from webhooks.core.db import get_engine
from webhooks.history.intervals import interval_tallies
from webhooks.history.pagination import page
from webhooks.history.partitions import is_partitioned, planned_once
from webhooks.history.queries import Window, endpoint_attempts_query
from webhooks.history.stats import endpoint_stats, newest_attempts
from webhooks.models import Attempt, Endpoint


@pytest.fixture
def history(session: Session) -> tuple[Endpoint, dict[str, str]]:
    """An endpoint whose attempts are in four partitions: of deliveries created 30 and 3 days
    ago and today, and the default one (a PING). The newest failure and the newest success
    are both attempts of the 30-day-old delivery, made in the last minutes."""
    assert is_partitioned(session.connection())  # the suite runs on Postgres
    now = clock.now()
    tenant = create_tenant(session, "acme")
    endpoint = make_endpoint(session, tenant, "https://receiver.example/hook")
    old = make_delivery(session, endpoint, at=now - timedelta(days=30), status="succeeded")
    recent = make_delivery(session, endpoint, at=now - timedelta(days=3), status="failed")
    today = make_delivery(session, endpoint, at=now - timedelta(minutes=30), status="succeeded")
    made = {
        "old first": make_attempt(session, endpoint, at=now - timedelta(days=30), delivery=old),
        "recent": make_attempt(
            session, endpoint, at=now - timedelta(days=3), status=500, delivery=recent
        ),
        "today": make_attempt(session, endpoint, at=now - timedelta(minutes=29), delivery=today),
        "ping": make_attempt(session, endpoint, at=now - timedelta(minutes=20)),
        "old retried today": make_attempt(
            session, endpoint, at=now - timedelta(minutes=10), status=503, delivery=old, number=2
        ),
        "old redelivered today": make_attempt(
            session, endpoint, at=now - timedelta(minutes=5), delivery=old, number=3
        ),
    }
    session.commit()
    return endpoint, {name: attempt.id for name, attempt in made.items()}


def _partitions_of(session: Session, ids: list[str]) -> set[str]:
    rows = session.execute(
        text("SELECT tableoid::regclass::text FROM attempts WHERE id = ANY(:ids)"), {"ids": ids}
    )
    return {row[0] for row in rows}


def _generic_executions(session: Session) -> int:
    return int(
        session.scalar(
            text(
                "SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements"
                " WHERE name LIKE 'webhooks_g_%'"
            )
        )
    )


def test_run_history_pages_are_every_attempt_newest_first_across_partitions(
    session: Session, history: tuple[Endpoint, dict[str, str]]
) -> None:
    endpoint, made = history
    assert len(_partitions_of(session, list(made.values()))) == 4
    newest_first = sorted(made.values(), reverse=True)
    before = _generic_executions(session)
    for status, expected in [
        (None, newest_first),
        ("failed", [made["old retried today"], made["recent"]]),
        (
            "succeeded",
            [id_ for id_ in newest_first if id_ not in (made["old retried today"], made["recent"])],
        ),
    ]:
        query = endpoint_attempts_query(endpoint.id, status=status)
        seen: list[str] = []
        after = None
        while True:  # pages of two, so that every page's cursor is a parameter of one plan
            found = page(session, query, Attempt.id, limit=2, after=after)
            seen += [attempt.id for attempt in found.items]
            if found.next_after is None:
                break
            after = found.next_after
        assert seen == expected, status
    assert _generic_executions(session) > before  # they did run as prepared statements


def test_a_time_window_finds_todays_attempts_of_an_old_delivery(
    session: Session, history: tuple[Endpoint, dict[str, str]]
) -> None:
    endpoint, made = history
    now = clock.now()
    query = endpoint_attempts_query(endpoint.id, window=Window(now - timedelta(minutes=15), now))
    found = page(session, query, Attempt.id, limit=50)
    assert [attempt.id for attempt in found.items] == [
        made["old redelivered today"],
        made["old retried today"],
    ]


def test_newest_outcomes_and_live_counts_include_an_old_deliverys_attempts_today(
    session: Session, history: tuple[Endpoint, dict[str, str]]
) -> None:
    endpoint, made = history
    now = clock.now()
    stats = endpoint_stats(session, endpoint, now=now)
    assert stats.last_failure is not None
    assert stats.last_failure.status == 503  # the old delivery's retry, not the 3-day-old 500
    newest_success = select(Attempt.started_at).where(Attempt.id == made["old redelivered today"])
    assert stats.last_success_at == session.scalar(newest_success)
    assert newest_attempts(session, [endpoint.id])[endpoint.id].id == made["old redelivered today"]
    # The last hour, read live in three intervals: the constants that number them come back
    # as integers (declared parameter types), and each attempt lands in its own interval.
    starts = [now - timedelta(minutes=60), now - timedelta(minutes=15), now - timedelta(minutes=7)]
    [first, middle, last] = interval_tallies(session, [endpoint.id], starts, now)[endpoint.id]
    assert (first.attempts, first.pings, middle.attempts, last.attempts) == (1, 1, 1, 1)
    assert (middle.succeeded, last.succeeded) == (0, 1)
    week = interval_tallies(session, [endpoint.id], [now - timedelta(days=7)], now)[endpoint.id]
    assert (week[0].attempts, week[0].succeeded) == (4, 2)


def test_a_rolled_back_transaction_keeps_the_statement_and_its_generic_plan(
    history: tuple[Endpoint, dict[str, str]],
) -> None:
    endpoint, made = history
    query = select(Attempt.id).where(Attempt.endpoint_id == endpoint.id).order_by(Attempt.id)
    plans = text(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE name LIKE 'webhooks_g_%'"
        " AND statement LIKE '%WHERE attempts.endpoint_id = $1 ORDER BY attempts.id'"
    )
    with get_engine().connect() as connection, Session(bind=connection) as own:
        assert list(own.scalars(planned_once(own, query))) == sorted(made.values())
        own.rollback()  # undoes the plan-cache setting, not the PREPARE
        assert list(own.scalars(planned_once(own, query))) == sorted(made.values())
        assert own.execute(plans).all() == [(2, 0)]  # one statement, never a custom plan


def test_the_least_recently_used_statements_are_deallocated_past_the_limit(
    session: Session, history: tuple[Endpoint, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, made = history
    monkeypatch.setattr(prepared, "GENERIC_PER_CONNECTION", 3)
    for limit in range(1, 7):  # six statements (the limit is a constant of each)
        query = (
            select(Attempt.id)
            .where(Attempt.endpoint_id == endpoint.id)
            .order_by(Attempt.id)
            .limit(literal_column(str(limit)))
        )
        assert list(session.scalars(planned_once(session, query))) == sorted(made.values())[:limit]
    count = session.scalar(
        text("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'webhooks_g_%'")
    )
    assert count == 3


def test_queries_not_reading_attempts_are_planned_as_usual(
    session: Session, history: tuple[Endpoint, dict[str, str]]
) -> None:
    endpoint, _ = history
    query = select(Endpoint.id).where(Endpoint.id == endpoint.id)
    assert planned_once(session, query) is query
