"""Ingestion on real Postgres: fan-out, idempotency under concurrency, outbox, validation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.e2e.broker import environment
from tests.services import free_port
from webhooks import enqueue_event
from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef
from webhooks.core.db import get_engine, new_session
from webhooks.core.errors import DatabaseUnavailable, InvalidInput, NotFound, PayloadTooLarge
from webhooks.delivery.state import release_waiting
from webhooks.ingest.enqueue import ingest
from webhooks.ingest.event_types import create_event_type
from webhooks.models import Delivery, Endpoint, Event, Tenant


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[DeliveryRef]:
    """What the outbox hands to the broker (the publishing itself is another test's)."""
    sent: list[DeliveryRef] = []

    def publish(refs: list[DeliveryRef], **_: Any) -> int:
        sent.extend(refs)
        return len(refs)

    monkeypatch.setattr(broker, "publish", publish)
    return sent


def add_endpoint(session: Session, tenant: Tenant, *filters: str, enabled: bool = True) -> str:
    endpoint = Endpoint(
        tenant_id=tenant.id,
        url="http://127.0.0.1:9/hook",
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        event_types=list(filters),
        enabled=enabled,
    )
    session.add(endpoint)
    session.commit()
    return endpoint.id


def deliveries_of(event_id: str) -> list[Delivery]:
    with new_session() as session:
        return list(session.scalars(select(Delivery).where(Delivery.event_id == event_id)))


def count(model: type[Event] | type[Delivery]) -> int:
    with new_session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_fan_out_by_filters_with_disabled_endpoints_waiting(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    every = add_endpoint(session, tenant)
    prefix = add_endpoint(session, tenant, "booking.*")
    exact = add_endpoint(session, tenant, "traveller.updated", "booking.created")
    add_endpoint(session, tenant, "booking")
    add_endpoint(session, tenant, "bookings.*")
    add_endpoint(session, tenant, "traveller.*")
    paused = add_endpoint(session, tenant, "booking.*", enabled=False)

    event_id = enqueue_event("booking.created", {"id": 1}, tenant="acme")
    made = {d.endpoint_id: d for d in deliveries_of(event_id)}
    assert set(made) == {every, prefix, exact, paused}
    assert {ref.endpoint_id for ref in published} == {every, prefix, exact}
    assert all(
        ref.queue == "deliveries" and ref.event_type == "booking.created" for ref in published
    )
    assert made[paused].next_attempt_at is None and made[paused].status == "pending"
    assert made[every].next_attempt_at is not None

    published.clear()
    deep = enqueue_event("booking.x.y", {}, tenant=tenant.id)
    assert {d.endpoint_id for d in deliveries_of(deep)} == {every, prefix, paused}
    assert len(published) == 2


def test_no_endpoint_no_delivery(tenant: Tenant, published: list[DeliveryRef]) -> None:
    event_id = enqueue_event("booking.created", {}, tenant="acme")
    assert deliveries_of(event_id) == [] and published == []


def test_release_waiting_publishes_after_commit(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    paused = add_endpoint(session, tenant, enabled=False)
    enqueue_event("a.b", {}, tenant="acme")
    enqueue_event("a.c", {}, tenant="acme")
    assert published == []
    endpoint = session.get(Endpoint, paused)
    assert endpoint is not None
    endpoint.enabled = True
    assert release_waiting(session, paused) == 2
    assert published == []
    session.commit()
    assert sorted(ref.event_type for ref in published) == ["a.b", "a.c"]
    with new_session() as check:
        due = check.scalars(select(Delivery.next_attempt_at).where(Delivery.endpoint_id == paused))
        assert all(when is not None for when in due)


def test_idempotency_under_twenty_concurrent_repeats(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    add_endpoint(session, tenant)
    add_endpoint(session, tenant, "order.*")
    start = threading.Barrier(20)
    ids: list[str] = []
    errors: list[BaseException] = []

    def repeat() -> None:
        try:
            with new_session() as own:
                start.wait()
                ids.append(
                    enqueue_event(
                        "order.paid", {"n": 1}, tenant="acme", idempotency_key="pay-42", session=own
                    )
                )
                own.commit()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=repeat) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(ids) == 20 and len(set(ids)) == 1
    assert count(Event) == 1 and count(Delivery) == 2
    assert len(published) == 2


def test_repeat_returns_the_first_event_and_its_count(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    add_endpoint(session, tenant)
    first = ingest(session, tenant=tenant, event_type="a.b", data={"v": 1}, idempotency_key="k")
    session.commit()
    again = ingest(session, tenant=tenant, event_type="a.b", data={"v": 2}, idempotency_key="k")
    session.commit()
    assert (first.created, first.deliveries) == (True, 1)
    assert (again.created, again.deliveries, again.event.id) == (False, 1, first.event.id)
    assert again.event.data == {"v": 1}
    assert len(published) == 1
    # The key is per tenant.
    other = Tenant(uid="globex")
    session.add(other)
    session.commit()
    assert ingest(session, tenant=other, event_type="a.b", data={}, idempotency_key="k").created


def test_outbox_publishes_on_commit_only(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    add_endpoint(session, tenant)
    event_id = enqueue_event("a.b", {}, tenant="acme", session=session)
    assert published == []
    with new_session() as other:  # not visible before the commit either
        assert other.get(Event, event_id) is None
    session.commit()
    assert [ref.id for ref in published] == [d.id for d in deliveries_of(event_id)]


def test_outbox_publishes_nothing_on_rollback(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    add_endpoint(session, tenant)
    rolled_back = enqueue_event("a.b", {}, tenant="acme", session=session)
    session.rollback()
    closed = new_session()
    enqueue_event("a.b", {}, tenant="acme", session=closed)
    closed.close()
    session.execute(select(1))
    session.commit()
    assert published == [] and count(Event) == 0
    assert deliveries_of(rolled_back) == []


def test_outbox_savepoint_rollback_drops_only_its_own(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    add_endpoint(session, tenant)
    kept = enqueue_event("a.kept", {}, tenant="acme", session=session)
    savepoint = session.begin_nested()
    enqueue_event("a.dropped", {}, tenant="acme", session=session)
    savepoint.rollback()
    with session.begin_nested():
        enqueue_event("a.released", {}, tenant="acme", session=session)
    session.commit()
    assert sorted(ref.event_type for ref in published) == ["a.kept", "a.released"]
    assert len(deliveries_of(kept)) == 1


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (["not", "an", "object"], InvalidInput, "must be a JSON object, not list"),
        ("text", InvalidInput, "must be a JSON object, not str"),
        ({"when": object()}, InvalidInput, "not JSON-serialisable"),
        ({"ratio": float("nan")}, InvalidInput, "not JSON-serialisable"),
        ({"name": "a\x00b"}, InvalidInput, "NUL character"),
        ({"nested": [{"k\x00": 1}]}, InvalidInput, "NUL character"),
        ({"big": "x" * 262_144}, PayloadTooLarge, "more than the 262144 allowed"),
    ],
)
def test_invalid_payloads_are_refused_and_nothing_is_stored(
    tenant: Tenant, published: list[DeliveryRef], data: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        enqueue_event("a.b", data, tenant="acme")
    assert getattr(raised.value, "field", None) == "data"
    assert count(Event) == 0 and published == []


def test_escaped_backslash_u0000_text_is_not_a_nul(
    tenant: Tenant, published: list[DeliveryRef]
) -> None:
    event_id = enqueue_event("a.b", {"path": "C:\\u0000"}, tenant="acme")
    with new_session() as session:
        event = session.get(Event, event_id)
        assert event is not None and event.data == {"path": "C:\\u0000"}


def test_schema_error_names_the_path(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    schema = {
        "type": "object",
        "required": ["booking"],
        "properties": {
            "booking": {
                "type": "object",
                "properties": {"guests": {"type": "array", "items": {"type": "integer"}}},
            }
        },
    }
    create_event_type(session, tenant.id, "booking.created", schema=schema)
    session.commit()
    with pytest.raises(InvalidInput, match="'two' is not of type 'integer'") as raised:
        enqueue_event("booking.created", {"booking": {"guests": [1, "two"]}}, tenant="acme")
    assert raised.value.field == "data.booking.guests.1"
    with pytest.raises(InvalidInput, match="'booking' is a required property") as raised:
        enqueue_event("booking.created", {}, tenant="acme")
    assert raised.value.field == "data"
    assert enqueue_event("booking.created", {"booking": {"guests": [2]}}, tenant="acme")
    assert enqueue_event("booking.other", {"anything": True}, tenant="acme")


def test_a_schema_that_loops_is_a_clear_error_not_a_crash(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    create_event_type(session, tenant.id, "loop.forever", schema={"$ref": "#"})
    session.commit()
    with pytest.raises(InvalidInput, match="cannot be applied") as raised:
        enqueue_event("loop.forever", {"a": 1}, tenant="acme")
    assert raised.value.field == "data"
    assert published == []


def test_bad_names_keys_timestamps_and_tenants(
    tenant: Tenant, published: list[DeliveryRef]
) -> None:
    with pytest.raises(InvalidInput, match="not an event type name"):
        enqueue_event("booking created", {}, tenant="acme")
    with pytest.raises(InvalidInput, match="idempotency_key"):
        enqueue_event("a.b", {}, tenant="acme", idempotency_key="k" * 201)
    with pytest.raises(InvalidInput, match="time zone"):
        enqueue_event("a.b", {}, tenant="acme", timestamp="2026-11-22T10:00:00")
    with pytest.raises(NotFound, match="no tenant 'nobody'"):
        enqueue_event("a.b", {}, tenant="nobody")


def test_producer_timestamp_is_kept(tenant: Tenant, published: list[DeliveryRef]) -> None:
    event_id = enqueue_event("a.b", {}, tenant="acme", timestamp="2026-11-22T10:00:00Z")
    with new_session() as session:
        event = session.get(Event, event_id)
        assert event is not None and event.timestamp.isoformat() == "2026-11-22T10:00:00+00:00"


@pytest.fixture
def dead_database() -> Iterator[None]:
    from webhooks.core.config import get_settings

    url = get_settings().database_url.rsplit("@", 1)[0] + f"@127.0.0.1:{free_port()}/nothing"
    with environment(WEBHOOKS_DATABASE_URL=url):
        yield


def test_unreachable_database_is_an_error_not_a_silent_drop(
    clean_db: None, dead_database: None
) -> None:
    with pytest.raises(DatabaseUnavailable, match="database unreachable"):
        enqueue_event("a.b", {}, tenant="acme")


def test_enqueue_prepares_again_on_a_new_connection(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    """The prepared ingest statement survives its server session being killed: the dropped
    connection is retried once on a fresh one, where the statement is prepared anew."""
    add_endpoint(session, tenant)
    first = enqueue_event("order.created", {"n": 1}, tenant=tenant.uid)
    with get_engine().begin() as connection:  # not the pooled autocommit connection it kills
        killed = connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE 'EXECUTE webhooks_ingest%%'"
        ).all()
    assert killed and all(ok for (ok,) in killed)  # one, or more after earlier tests
    second = enqueue_event("order.created", {"n": 2}, tenant=tenant.uid)
    assert first != second
    assert [len(deliveries_of(event_id)) for event_id in (first, second)] == [1, 1]
    assert len(published) == 2
