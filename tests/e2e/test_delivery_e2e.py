"""End to end: a real Celery worker (gevent) on real Redis and Postgres delivering to a real
receiver on 127.0.0.1, which verifies every request with the ``standardwebhooks`` package."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response

from tests.e2e import dead_letters
from tests.e2e.broker import environment, exclusive_redis_db, flush, queued
from tests.processes import Worker
from tests.services import wait_until
from webhooks import enqueue_event
from webhooks.admin.tenants import create_tenant
from webhooks.broker import publishing as broker
from webhooks.core.db import new_session
from webhooks.delivery.sweeper import sweep
from webhooks.ingest.enqueue import ingest
from webhooks.models import Attempt, Delivery, Endpoint, Tenant

pytestmark = pytest.mark.e2e

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def dead_letter_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "dead-letters.jsonl"


@pytest.fixture(scope="module")
def worker(
    broker_url: str, dead_letter_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    env = {
        **os.environ,
        "WEBHOOKS_BROKER_URL": broker_url,
        "WEBHOOKS_DEAD_LETTER_HANDLER": f"{dead_letters.__name__}:record",
        dead_letters.FILE_VARIABLE: str(dead_letter_file),
    }
    started = Worker(env, tmp_path_factory.mktemp("worker") / "worker.log")
    yield started
    started.stop()


class Received:
    """What the receiver got on one path, verified as a Standard Webhooks receiver does."""

    def __init__(self, server: HTTPServer, path: str, answers: Callable[[int], Response]) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self._answers = answers
        self.url = server.url_for(path)
        server.expect_request(path, method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append((dict(request.headers), request.get_data()))
            number = len(self.requests)
        return self._answers(number)

    def verified(self) -> list[dict[str, Any]]:
        """Each request's payload, after checking its signature."""
        return [Webhook(SECRET).verify(body, headers) for headers, body in self.requests]

    def header(self, name: str) -> list[str]:
        return [headers[name] for headers, _ in self.requests]


def status(code: int) -> Callable[[int], Response]:
    return lambda _: Response("answer", status=code)


@pytest.fixture
def tenant(session: Session, worker: Worker, receiver: HTTPServer) -> Iterator[Tenant]:
    tenant = create_tenant(session, "acme")
    session.commit()
    yield tenant
    receiver.clear()


def endpoint(session: Session, tenant: Tenant, url: str, **fields: Any) -> str:
    made = Endpoint(tenant_id=tenant.id, url=url, secret=SECRET, **fields)
    session.add(made)
    session.commit()
    return made.id


def delivery(event_id: str) -> Delivery:
    with new_session() as session:
        return session.scalars(select(Delivery).where(Delivery.event_id == event_id)).one()


def attempts(delivery_id: str) -> list[Attempt]:
    with new_session() as session:
        query = select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id)
        return list(session.scalars(query))


def wait_for_status(event_id: str, wanted: str, timeout: float = 20) -> Delivery:
    wait_until(lambda: delivery(event_id).status == wanted, timeout, f"delivery {wanted}")
    return delivery(event_id)


def test_success_signed_and_recorded(
    session: Session, tenant: Tenant, receiver: HTTPServer
) -> None:
    got = Received(receiver, "/ok", status(200))
    endpoint(session, tenant, got.url, signature_header="X-Payload-Signature")
    event_id = enqueue_event("booking.created", {"booking": {"id": 7}}, tenant="acme")
    done = wait_for_status(event_id, "succeeded")
    assert got.verified() == [
        {"id": event_id, "type": "booking.created", "timestamp": got.verified()[0]["timestamp"],
         "data": {"booking": {"id": 7}}}
    ]  # fmt: skip
    [attempt] = attempts(done.id)
    assert (attempt.attempt, attempt.response_status, attempt.error) == (1, 200, None)
    assert attempt.request_headers["X-Payload-Signature"] == "[redacted]"
    assert (done.attempts, done.last_status_code) == (1, 200)


def test_retries_keep_the_webhook_id_on_a_custom_schedule(
    session: Session, tenant: Tenant, receiver: HTTPServer
) -> None:
    got = Received(receiver, "/flaky", lambda n: Response("", status=500 if n <= 2 else 200))
    endpoint(session, tenant, got.url, retry_schedule=[0, 1, 1])
    event_id = enqueue_event("booking.created", {}, tenant="acme")
    done = wait_for_status(event_id, "succeeded")
    assert len(got.verified()) == 3
    assert got.header("Webhook-Id") == [event_id] * 3
    assert [a.response_status for a in attempts(done.id)] == [500, 500, 200]
    started = [a.started_at for a in attempts(done.id)]
    assert (started[2] - started[1]).total_seconds() >= 0.9  # the 1 s of the schedule


def test_final_failure_goes_to_the_dead_letter_queue(
    session: Session, tenant: Tenant, receiver: HTTPServer, dead_letter_file: Path
) -> None:
    got = Received(receiver, "/down", status(503))
    endpoint(session, tenant, got.url, retry_schedule=[0])
    event_id = enqueue_event("booking.created", {}, tenant="acme")
    failed = wait_for_status(event_id, "failed")
    assert (failed.attempts, failed.last_status_code, failed.next_attempt_at) == (2, 503, None)
    assert len(got.requests) == 2

    def dead_lettered() -> bool:
        lines = dead_letter_file.read_text().splitlines() if dead_letter_file.exists() else []
        return any(json.loads(line)["delivery_id"] == failed.id for line in lines)

    wait_until(dead_lettered, 10, "the dead-letter handler")


def test_timeout_is_classified(session: Session, tenant: Tenant, receiver: HTTPServer) -> None:
    def slow(_: int) -> Response:
        time.sleep(2.5)
        return Response("late")

    got = Received(receiver, "/slow", slow)
    endpoint(session, tenant, got.url, timeout_seconds=1, retry_schedule=[])
    event_id = enqueue_event("booking.created", {}, tenant="acme")
    failed = wait_for_status(event_id, "failed")
    [attempt] = attempts(failed.id)
    assert attempt.error == "timeout" and attempt.response_status is None
    assert 900 <= attempt.duration_ms < 2500
    assert len(got.requests) == 1


def test_redirect_is_not_followed(session: Session, tenant: Tenant, receiver: HTTPServer) -> None:
    target = Received(receiver, "/elsewhere", status(200))
    moved = Received(receiver, "/moved", lambda _: Response("", 307, {"Location": target.url}))
    endpoint(session, tenant, moved.url, retry_schedule=[])
    event_id = enqueue_event("booking.created", {}, tenant="acme")
    failed = wait_for_status(event_id, "failed")
    [attempt] = attempts(failed.id)
    assert (attempt.response_status, attempt.error) == (307, "redirect")
    assert len(moved.requests) == 1 and target.requests == []


def nothing_queued(url: str) -> bool:
    """No message waits in a queue nor is held unacknowledged by the worker."""
    client = redis.Redis.from_url(url)
    try:
        held = client.hlen("unacked")
    finally:
        client.close()
    return held == 0 and all(queued(url, queue) == [] for queue in ("deliveries", "retries"))


def test_duplicated_task_messages_send_once(
    session: Session, tenant: Tenant, receiver: HTTPServer, broker_url: str
) -> None:
    def slowish(_: int) -> Response:
        time.sleep(0.3)
        return Response("ok")

    got = Received(receiver, "/once", slowish)
    endpoint(session, tenant, got.url)
    event_id = enqueue_event("booking.created", {}, tenant="acme")
    ref = broker.DeliveryRef(delivery(event_id).id, "ep", "booking.created")
    assert broker.publish([ref, ref, ref]) == 3  # while the first is in flight
    wait_for_status(event_id, "succeeded")
    assert broker.publish([ref]) == 1  # and after it is done
    wait_until(lambda: nothing_queued(broker_url), 10, "the duplicates to be consumed")
    assert len(got.requests) == 1
    assert len(attempts(delivery(event_id).id)) == 1


def test_sweeper_recovers_a_delivery_the_broker_lost(
    session: Session, tenant: Tenant, receiver: HTTPServer
) -> None:
    got = Received(receiver, "/recovered", status(200))
    endpoint(session, tenant, got.url)
    # Published to a database the worker does not read, then flushed: the message is gone.
    with exclusive_redis_db(os.environ["WEBHOOKS_TEST_REDIS_URL"]) as void:
        with environment(WEBHOOKS_BROKER_URL=void):
            event_id = ingest(
                session, tenant=tenant, event_type="booking.created", data={}
            ).event.id
            session.commit()
            assert len(queued(void, "deliveries")) == 1
        flush(void)
    assert delivery(event_id).status == "pending"
    assert sweep() == 1  # the worker's broker holds no message for it
    wait_for_status(event_id, "succeeded")
    assert len(got.verified()) == 1
