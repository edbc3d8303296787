"""Ingestion against a real Redis broker: publishing, the broker being down, the sweeper."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.e2e.broker import environment, exclusive_redis_db, queued
from tests.services import free_port
from webhooks import enqueue_event
from webhooks.core.db import new_session
from webhooks.delivery.sweeper import sweep
from webhooks.models import Delivery, Endpoint, Tenant
from webhooks.ops.cli import main


@pytest.fixture
def broker_url() -> Iterator[str]:
    with (
        exclusive_redis_db(os.environ["WEBHOOKS_TEST_REDIS_URL"]) as url,
        environment(WEBHOOKS_BROKER_URL=url),
    ):
        yield url


@pytest.fixture
def endpoints(session: Session, tenant: Tenant) -> list[str]:
    made = [
        Endpoint(tenant_id=tenant.id, url="http://127.0.0.1:9/", secret="s", event_types=types)
        for types in ([], ["a.*"], ["b.*"])
    ]
    session.add_all(made)
    session.commit()
    return [endpoint.id for endpoint in made]


def delivery_ids(event_id: str) -> set[str]:
    with new_session() as session:
        return set(session.scalars(select(Delivery.id).where(Delivery.event_id == event_id)))


def test_one_task_per_delivery_on_the_deliveries_queue(
    broker_url: str, endpoints: list[str]
) -> None:
    event_id = enqueue_event("a.b", {"x": 1}, tenant="acme")
    messages = queued(broker_url, "deliveries")
    assert sorted(messages) == sorted(("webhooks.deliver", [d]) for d in delivery_ids(event_id))
    assert len(messages) == 2


def test_broker_down_at_enqueue_then_the_sweeper_publishes(
    broker_url: str, endpoints: list[str]
) -> None:
    with environment(WEBHOOKS_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        started = time.monotonic()
        event_id = enqueue_event("a.b", {}, tenant="acme")  # stored: no error for the producer
        assert time.monotonic() - started < 5
    assert queued(broker_url, "deliveries") == []
    ids = delivery_ids(event_id)
    assert len(ids) == 2

    # The broker holds no message for them: the next sweep publishes both.
    assert sweep() == 2
    assert sorted(args[0] for _, args in queued(broker_url, "deliveries")) == sorted(ids)
    # The sweep stamped them: the next sweep does not duplicate what it just published.
    assert sweep() == 0


def test_cli_send(broker_url: str, endpoints: list[str]) -> None:
    result = CliRunner().invoke(main, ["send", "acme", "a.b", '{"n": 1}', "--idempotency-key", "k"])
    assert result.exit_code == 0, result.output
    event_id = result.stdout.strip()
    assert event_id.startswith("evt_") and len(delivery_ids(event_id)) == 2
    again = CliRunner().invoke(main, ["send", "acme", "a.b", '{"n": 2}', "--idempotency-key", "k"])
    assert again.stdout.strip() == event_id
    assert len(queued(broker_url, "deliveries")) == 2


@pytest.mark.parametrize(
    ("payload", "message"),
    [("{nope", "Error: JSON is not valid JSON: "), ("[1]", "Error: data must be a JSON object")],
)
def test_cli_send_errors_are_one_line(tenant: Tenant, payload: str, message: str) -> None:
    result = CliRunner().invoke(main, ["send", "acme", "a.b", payload])
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
