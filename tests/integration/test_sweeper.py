"""The sweeper against a real Redis broker and Postgres: what it republishes, and what not.

No worker runs: the tests take messages out of the broker the way a dying worker or a flush
does, and check that the sweeper republishes exactly those deliveries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from tests.e2e.broker import environment, exclusive_redis_db, flush, queued
from tests.services import free_port
from webhooks import enqueue_event
from webhooks.core import clock
from webhooks.core.db import get_engine, new_session
from webhooks.delivery import engine, sweeper
from webhooks.delivery.sweeper import sweep
from webhooks.models import Delivery, Endpoint, Tenant


@pytest.fixture
def broker_url() -> Iterator[str]:
    with (
        exclusive_redis_db(os.environ["WEBHOOKS_TEST_REDIS_URL"]) as url,
        environment(WEBHOOKS_BROKER_URL=url),
    ):
        yield url


@pytest.fixture
def endpoint(session: Session, tenant: Tenant) -> str:
    made = Endpoint(tenant_id=tenant.id, url="http://127.0.0.1:9/", secret="s")
    session.add(made)
    session.commit()
    return made.id


def enqueue(count: int) -> list[str]:
    """Deliveries of ``count`` new events, in the order they were published."""
    event_ids = [enqueue_event("a.b", {"n": n}, tenant="acme") for n in range(count)]
    with new_session() as session:
        rows = session.execute(select(Delivery.event_id, Delivery.id))
        by_event = {event_id: delivery_id for event_id, delivery_id in rows}
    return [by_event[event_id] for event_id in event_ids]


def in_queue(broker_url: str, queue: str = "deliveries") -> list[str]:
    return [str(args[0]) for _, args in queued(broker_url, queue)]


def take_oldest(broker_url: str, count: int, queue: str = "deliveries") -> None:
    """Take messages as a worker does (from the right of kombu's list) and never ack them."""
    client = redis.Redis.from_url(broker_url)
    try:
        for _ in range(count):
            assert client.rpop(queue) is not None
    finally:
        client.close()


def set_lease(delivery_id: str, seconds_from_now: float) -> None:
    with new_session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(locked_until=clock.now() + timedelta(seconds=seconds_from_now))
        )
        session.commit()


def test_an_honest_backlog_is_never_republished(broker_url: str, endpoint: str) -> None:
    published = enqueue(40)
    assert sweep() == 0
    assert sweep() == 0
    assert in_queue(broker_url) == published


def test_a_flushed_broker_is_republished_on_the_next_sweep(broker_url: str, endpoint: str) -> None:
    published = enqueue(40)
    flush(broker_url)
    assert sweep() == 40
    assert sorted(in_queue(broker_url)) == sorted(published)
    assert sweep() == 0  # the broker holds them again


def test_messages_a_dead_worker_took_are_republished_and_no_others(
    broker_url: str, endpoint: str
) -> None:
    published = enqueue(12)
    take_oldest(broker_url, 3)  # reserved by a worker that was killed before claiming them
    assert sweep() == 3
    assert in_queue(broker_url) == published[3:] + published[:3]
    assert sweep() == 0


def test_a_lapsed_claim_is_republished_once_its_lease_ends(broker_url: str, endpoint: str) -> None:
    published = enqueue(5)
    take_oldest(broker_url, 1)
    set_lease(published[0], 30)  # claimed by a worker that then died
    assert sweep() == 0  # the claim still holds
    set_lease(published[0], -1)  # its lease ended
    assert sweep() == 1
    assert in_queue(broker_url)[-1] == published[0]
    assert sweep() == 0


def test_a_claim_lapsed_after_newer_publishes_is_republished_on_the_next_sweep(
    broker_url: str, endpoint: str
) -> None:
    """A worker took the first message, claimed its delivery and died; its lease ended just
    now, after the other four were published. No queued message stands for a lapsed claim,
    so it goes out on the next sweep, and the four queued ones still match the queue."""
    published = enqueue(5)
    take_oldest(broker_url, 1)
    assert engine.claim(published[0]) is not None
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "UPDATE deliveries SET locked_until = statement_timestamp()"
                " - interval '1 millisecond' WHERE id = :id"
            ),
            {"id": published[0]},
        )
    assert sweep() == 1
    assert in_queue(broker_url) == published[1:] + published[:1]
    assert sweep() == 0


@pytest.mark.parametrize("retry_or_slot_holder", [{"attempts": 1}, {"admitted": True}])
def test_a_lost_retry_or_slot_holder_goes_back_to_the_retries_queue(
    broker_url: str, endpoint: str, retry_or_slot_holder: dict[str, object]
) -> None:
    """A rate-limit slot holder's message rides the retries queue, as a retry's does, so
    that it never waits behind its endpoint's backlog of first attempts."""
    published = enqueue(3)
    with new_session() as session:
        session.execute(
            update(Delivery).where(Delivery.id == published[1]).values(**retry_or_slot_holder)
        )
        session.commit()
    flush(broker_url)
    assert sweep() == 3
    assert in_queue(broker_url, "retries") == [published[1]]
    assert sorted(in_queue(broker_url)) == sorted([published[0], published[2]])


def test_when_the_broker_cannot_be_asked_the_window_applies(broker_url: str, endpoint: str) -> None:
    published = enqueue(4)
    flush(broker_url)
    with environment(WEBHOOKS_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        assert sweeper.held_messages() is None
        assert sweep() == 0  # stamped moments ago: inside the window
    assert sweep(republish_after=timedelta(hours=1)) == 4  # asked again: it holds none
    assert sorted(in_queue(broker_url)) == sorted(published)


def test_one_sweep_runs_at_a_time(broker_url: str, endpoint: str) -> None:
    enqueue(6)
    flush(broker_url)
    with get_engine().connect() as other:
        assert other.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": sweeper._LOCK_KEY})
        assert sweep() == 0  # another sweep holds the lock
        other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": sweeper._LOCK_KEY})
        other.commit()
    assert sweep() == 6
