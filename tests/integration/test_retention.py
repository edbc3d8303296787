"""Retention on Postgres: old history goes in batches, recent history and open deliveries
(with their event and attempts) stay."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.history_fixtures import make_attempt, make_delivery, make_endpoint
from webhooks.core import clock
from webhooks.core.db import get_engine, new_session
from webhooks.history.retention import _without_flush_wait, purge
from webhooks.models import Attempt, Delivery, Event, Tenant
from webhooks.ops.cli import main


def counts() -> tuple[int, int, int]:
    with new_session() as session:
        return (
            session.scalar(select(func.count()).select_from(Attempt)) or 0,
            session.scalar(select(func.count()).select_from(Delivery)) or 0,
            session.scalar(select(func.count()).select_from(Event)) or 0,
        )


def test_purge_deletes_only_finished_history_older_than_retention(
    session: Session, tenant: Tenant
) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/hook")
    old = clock.now() - timedelta(days=31)
    new = clock.now() - timedelta(days=29)
    for status in ("succeeded", "failed", "succeeded"):
        done = make_delivery(session, endpoint, at=old, status=status)
        make_attempt(session, endpoint, at=old, delivery=done)
        make_attempt(session, endpoint, at=old, delivery=done, number=2)
    make_attempt(session, endpoint, at=old)  # an old PING
    parked = make_delivery(session, endpoint, at=old, status="retrying")
    kept_attempt = make_attempt(session, endpoint, at=old, delivery=parked, status=500)
    recent = make_delivery(session, endpoint, at=new, status="succeeded")
    make_attempt(session, endpoint, at=new, delivery=recent)
    session.commit()
    assert counts() == (9, 5, 5)

    purged = purge(batch=2)
    assert (purged.attempts, purged.deliveries, purged.events) == (7, 3, 3)
    assert counts() == (2, 2, 2)
    with new_session() as check:
        assert check.get(Delivery, parked.id) is not None
        assert check.get(Event, parked.event_id) is not None
        assert check.get(Attempt, kept_attempt.id) is not None
    assert purge().total == 0


def test_purge_command_prints_the_counts(session: Session, tenant: Tenant) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/hook")
    make_delivery(session, endpoint, at=clock.now() - timedelta(days=40))
    session.commit()
    result = CliRunner().invoke(main, ["purge"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    # Partitions of attempts left empty by earlier tests go too (whole days, not counted above).
    assert printed == {"attempts": 0, "deliveries": 1, "events": 1, "attempt_hours": 0} | {
        "partitions": printed["partitions"]
    }


def test_purge_commits_skip_the_wal_flush_wait_and_only_theirs() -> None:
    with get_engine().begin() as connection:
        _without_flush_wait(connection)
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
    with get_engine().connect() as connection:
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
