"""``attempts`` partitioned by the delivery's creation day on Postgres: the migration of an
existing install, partitions made ahead and on a missing day, retention dropping whole days."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from pytest_httpserver import HTTPServer
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests import services
from tests.integration.history_fixtures import id_at, make_attempt, make_delivery, make_endpoint
from webhooks.broker import publishing as broker
from webhooks.core import clock
from webhooks.core.db import get_engine, new_session
from webhooks.delivery.engine import process
from webhooks.history import partitions
from webhooks.history.partitions import Partition
from webhooks.history.retention import purge
from webhooks.models import Attempt, Delivery, Tenant
from webhooks.ops.migrate import alembic_config
from webhooks.outbound.http import default_transport

_ATTEMPT = text(
    "INSERT INTO attempts (id, tenant_id, delivery_id, endpoint_id, attempt, started_at,"
    " duration_ms, request_url, request_headers, request_body, response_status)"
    " VALUES (:id, 'ten_1', :delivery, 'ep_1', :n, :at, 10, 'https://r.example/', '{}', '{}', 200)"
)


def _delivery(connection: Connection, at: datetime, n: int) -> str:
    delivery_id = id_at("dlv", at)
    event_id = id_at("evt", at)
    run = connection.execute
    run(
        text(
            "INSERT INTO events (id, tenant_id, type, data, timestamp, created_at)"
            " VALUES (:id, 'ten_1', 'a.b', '{}', :at, :at)"
        ),
        {"id": event_id, "at": at},
    )
    run(
        text(
            "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, status, attempts,"
            " created_at, updated_at) VALUES (:id, 'ten_1', :e, 'ep_1', 'succeeded', :n, :at, :at)"
        ),
        {"id": delivery_id, "e": event_id, "n": n, "at": at},
    )
    return delivery_id


@pytest.fixture
def old_install() -> Iterator[tuple[str, Engine]]:
    """A database at revision 0011 (before partitions)."""
    admin_url = os.environ["WEBHOOKS_TEST_ADMIN_DATABASE_URL"]
    name = f"webhooks_partitions_{os.getpid()}"
    url = services.create_database(admin_url, name)
    engine = create_engine(url)
    try:
        command.upgrade(alembic_config(url), "0011")
        yield url, engine
    finally:
        engine.dispose()
        services.drop_database(admin_url, name)


def _where(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, tableoid::regclass::text FROM attempts"))
        return {row[0]: row[1] for row in rows}


def test_migration_keeps_every_row_routes_them_by_day_and_keeps_the_fencing(
    old_install: tuple[str, Engine],
) -> None:
    url, engine = old_install
    days_ago = [clock.now() - timedelta(days=n) for n in (40, 3)]
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants VALUES ('ten_1', 'acme', '', now(), now())"))
        connection.execute(
            text(
                "INSERT INTO endpoints (id, tenant_id, url, description, event_types, enabled,"
                " secret, headers, content_type, timeout_seconds, created_at, updated_at)"
                " VALUES ('ep_1', 'ten_1', 'https://r.example/', '', '[]', true, 'x', '{}',"
                " 'application/json', 10, now(), now())"
            )
        )
        expected = {}
        for at in days_ago:
            delivery_id = _delivery(connection, at, 2)
            for n in (1, 2):
                attempt_id = id_at("att", at + timedelta(seconds=n))
                connection.execute(
                    _ATTEMPT, {"id": attempt_id, "delivery": delivery_id, "n": n, "at": at}
                )
                expected[attempt_id] = Partition.of(delivery_id).name
        ping_id = id_at("att", clock.now())
        connection.execute(_ATTEMPT, {"id": ping_id, "delivery": None, "n": 1, "at": clock.now()})
        expected[ping_id] = partitions.DEFAULT

    command.upgrade(alembic_config(url), "head")

    assert _where(engine) == expected
    with engine.connect() as connection:
        assert partitions.is_partitioned(connection)
        days = {partition.day for partition in partitions.existing(connection)}
    today = clock.now().date()
    assert {at.date() for at in days_ago} | {today + timedelta(days=n) for n in range(3)} <= days
    assert today - timedelta(days=20) not in days  # only days with rows, and those ahead

    with engine.begin() as connection:
        oldest = connection.execute(text("SELECT min(delivery_id) FROM attempts")).scalar()
    again = {"id": id_at("att", clock.now()), "delivery": oldest, "n": 1, "at": clock.now()}
    with pytest.raises(IntegrityError, match="delivery_id_attempt"), engine.begin() as c:
        c.execute(_ATTEMPT, again)
    with engine.begin() as connection:  # a stale attempt may repeat a number: it did not count
        connection.execute(
            text(
                "INSERT INTO attempts (id, tenant_id, delivery_id, endpoint_id, attempt,"
                " started_at, duration_ms, request_url, request_headers, request_body, stale)"
                " VALUES (:id, 'ten_1', :d, 'ep_1', 1, now(), 1, 'u', '{}', '{}', true)"
            ),
            {"id": id_at("att", clock.now()), "d": oldest},
        )
        new = _delivery(connection, clock.now(), 1)
        new_attempt = id_at("att", clock.now())
        connection.execute(
            _ATTEMPT, {"id": new_attempt, "delivery": new, "n": 1, "at": clock.now()}
        )
        # A retried record (same id, same delivery) inserts nothing.
        retried = connection.execute(
            text(str(_ATTEMPT.text) + " ON CONFLICT (id, delivery_id) DO NOTHING"),
            {"id": new_attempt, "delivery": new, "n": 1, "at": clock.now()},
        )
        assert retried.rowcount == 0
    assert _where(engine)[new_attempt] == Partition(clock.now().date()).name

    command.downgrade(alembic_config(url), "0011")
    with engine.connect() as connection:
        assert not partitions.is_partitioned(connection)
        assert connection.execute(text("SELECT count(*) FROM attempts")).scalar() == 7


def test_partitions_are_made_ahead_and_a_missing_day_on_first_insert(
    session: Session, tenant: Tenant
) -> None:
    later = clock.now() + timedelta(days=400)
    assert partitions.ensure_ahead(now=later) == 4  # the day before, that day, 2 after
    assert partitions.ensure_ahead(now=later) == 0
    with get_engine().connect() as connection:
        days = {partition.day for partition in partitions.existing(connection)}
    assert {later.date() + timedelta(days=n) for n in range(-1, 3)} <= days

    endpoint = make_endpoint(session, tenant, "https://receiver.example/hook")
    missing = clock.now() + timedelta(days=900)
    delivery = make_delivery(session, endpoint, at=missing)
    session.commit()
    values = {
        "id": id_at("att", missing),
        "tenant": tenant.id,
        "delivery": delivery.id,
        "endpoint": endpoint.id,
    }
    insert = text(
        "INSERT INTO attempts (id, tenant_id, delivery_id, endpoint_id, attempt, started_at,"
        " duration_ms, request_url, request_headers, request_body)"
        " VALUES (:id, :tenant, :delivery, :endpoint, 1, now(), 1, 'u', '{}', '{}')"
    )

    def record() -> str:
        with get_engine().begin() as connection:
            connection.execute(insert, values)
            return str(
                connection.execute(
                    text("SELECT tableoid::regclass::text FROM attempts WHERE id = :id"), values
                ).scalar()
            )

    with pytest.raises(IntegrityError, match=partitions.DEFAULT_CHECK):
        record()  # what routed() catches: the row never lands in the default partition
    assert partitions.routed(record, delivery.id) == Partition(missing.date()).name


def test_the_engine_records_an_attempt_of_a_day_without_partition(
    session: Session, tenant: Tenant, receiver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "publish", lambda *args, **kwargs: None)
    receiver.expect_request("/missing-day").respond_with_data("ok")
    endpoint = make_endpoint(session, tenant, receiver.url_for("/missing-day"))
    long_ago = clock.now() - timedelta(days=300)  # a day no test made a partition for
    delivery = make_delivery(session, endpoint, at=long_ago, status="pending")
    session.commit()
    with get_engine().connect() as connection:
        assert Partition.of(delivery.id) not in partitions.existing(connection)

    process(delivery.id, default_transport())

    with new_session() as check:
        assert check.get_one(Delivery, delivery.id).status == "succeeded"
        recorded = check.query(Attempt).filter(Attempt.delivery_id == delivery.id).one()
        assert recorded.response_status == 200
    assert _where(get_engine())[recorded.id] == Partition(long_ago.date()).name


def test_retention_drops_whole_old_days_and_deletes_rows_of_a_day_with_an_open_delivery(
    session: Session, tenant: Tenant
) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/hook")
    finished_day = clock.now() - timedelta(days=50)
    open_day = clock.now() - timedelta(days=45)
    for status in ("succeeded", "failed"):
        done = make_delivery(session, endpoint, at=finished_day, status=status)
        make_attempt(session, endpoint, at=finished_day, delivery=done)
        make_attempt(session, endpoint, at=finished_day, delivery=done, number=2)
    done_beside_open = make_delivery(session, endpoint, at=open_day, status="succeeded")
    make_attempt(session, endpoint, at=open_day, delivery=done_beside_open)
    parked = make_delivery(session, endpoint, at=open_day, status="retrying")
    kept = make_attempt(session, endpoint, at=open_day, delivery=parked, status=500)
    recent = make_delivery(session, endpoint, at=clock.now(), status="succeeded")
    make_attempt(session, endpoint, at=clock.now(), delivery=recent)
    session.commit()

    purged = purge()

    with get_engine().connect() as connection:
        days = {partition.day for partition in partitions.existing(connection)}
    assert finished_day.date() not in days  # dropped whole: its rows are not counted
    assert open_day.date() in days
    # (Old days that other tests left empty are dropped too.)
    assert purged.partitions >= 1
    assert (purged.attempts, purged.deliveries, purged.events) == (1, 3, 3)
    with new_session() as check:
        assert check.get(Delivery, parked.id) is not None
        assert check.get(Attempt, kept.id) is not None
        remaining = check.query(Attempt.delivery_id).all()
    assert sorted(str(row[0]) for row in remaining) == sorted([parked.id, recent.id])


def test_partition_bounds_are_the_delivery_id_prefixes_of_two_midnights() -> None:
    day = date(2026, 12, 2)
    partition = Partition(day)
    first = id_at("dlv", datetime(2026, 12, 2, tzinfo=UTC))
    last = id_at("dlv", datetime(2026, 12, 2, 23, 59, 59, 999000, tzinfo=UTC))
    assert partition.lower <= first < last < partition.upper
    assert Partition.of(first) == Partition.of(last) == partition
    assert Partition.of(id_at("dlv", datetime(2026, 12, 3, tzinfo=UTC))).day == date(2026, 12, 3)
