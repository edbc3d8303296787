"""Flower against a real gevent worker: a delivered ``webhooks.deliver`` task is listed by
Flower's own HTTP API, with its readable arguments (delivery, event type, endpoint). The
worker logs in JSON here, so its output also shows that the worker's logging is ours."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.e2e.broker import environment, exclusive_redis_db
from tests.processes import Process, Worker
from tests.services import free_port, wait_until
from webhooks import enqueue_event
from webhooks.admin.tenants import create_tenant
from webhooks.core.db import new_session
from webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint

pytestmark = pytest.mark.e2e

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Flower(Process):
    """``celery -A workers flower`` on a free port, its API open (as behind a private network)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        port = free_port()
        super().__init__(
            [sys.executable, "-m", "celery", "-A", "workers", "flower", f"--port={port}",
             "--address=127.0.0.1"],
            {**env, "FLOWER_UNAUTHENTICATED_API": "1"},
            log,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        wait_until(self.ready, 60, "Flower to answer")

    def ready(self) -> bool:
        self.check_alive()
        try:
            return requests.get(f"{self.url}/healthcheck", timeout=1).text == "OK"
        except requests.ConnectionError:
            return False

    def tasks(self, **query: str) -> dict[str, dict[str, Any]]:
        response = requests.get(f"{self.url}/api/tasks", params=query, timeout=5)
        response.raise_for_status()
        tasks: dict[str, dict[str, Any]] = response.json()
        return tasks


@dataclass
class Stack:
    worker: Worker
    flower: Flower
    metrics_port: int


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with (
        exclusive_redis_db(os.environ["WEBHOOKS_TEST_REDIS_URL"]) as url,
        environment(WEBHOOKS_BROKER_URL=url),
    ):
        env = {**os.environ, "WEBHOOKS_BROKER_URL": url, "WEBHOOKS_LOG_FORMAT": "json"}
        flower = Flower(env, tmp_path / "flower.log")
        try:
            # The worker also counts in multiprocess mode and serves the sums on a port.
            (tmp_path / "prometheus").mkdir()
            worker_env = {
                **env,
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
                "WEBHOOKS_METRICS_PORT": str(free_port()),
            }
            worker = Worker(worker_env, tmp_path / "worker.log")
            try:
                yield Stack(worker, flower, int(worker_env["WEBHOOKS_METRICS_PORT"]))
            finally:
                worker.stop()
        finally:
            flower.stop()


def test_flower_lists_the_delivered_task(
    stack: Stack, session: Session, httpserver: HTTPServer
) -> None:
    worker, flower = stack.worker, stack.flower
    tenant = create_tenant(session, "acme")
    endpoint = Endpoint(tenant_id=tenant.id, url=httpserver.url_for("/hook"), secret=SECRET)
    session.add(endpoint)
    session.commit()
    httpserver.expect_request("/hook").respond_with_data("ok")

    def delivered_task() -> dict[str, Any] | None:
        done = flower.tasks(taskname="webhooks.deliver", state="SUCCESS")
        return next(iter(done.values()), None)

    # Flower sees only the events sent after it subscribed: its healthcheck answers a moment
    # before that, so an event is sent again if the first went unseen (bounded).
    sent: list[str] = []
    for _ in range(5):
        sent.append(enqueue_event("booking.created", {"n": 1}, tenant="acme"))
        try:
            wait_until(lambda: delivered_task() is not None, 6, "Flower to list the task")
            break
        except TimeoutError:
            continue
    task = delivered_task()
    assert task is not None, flower.log.read_text()[-2000:]
    with new_session() as db:
        deliveries = set(db.scalars(select(Delivery.id).where(Delivery.event_id.in_(sent))))
    # Readable: "<delivery id> <event type> -> <endpoint id>" (Flower shows args as given).
    delivery_id, event_type, arrow, endpoint_id = task["args"].split()
    assert (event_type, arrow, endpoint_id) == ("booking.created", "->", endpoint.id)
    assert delivery_id in deliveries
    assert task["name"] == "webhooks.deliver" and task["worker"].startswith("celery@")

    # Every task of a burst, with each of its events (received, started, succeeded), although
    # the gevent worker publishes them in batches (workers.events).
    burst = [enqueue_event("booking.created", {"n": n}, tenant="acme") for n in range(20)]
    total = len(sent) + len(burst)

    def all_listed() -> bool:
        done = flower.tasks(taskname="webhooks.deliver", state="SUCCESS")
        return len(done) >= total and all(t["received"] and t["started"] for t in done.values())

    wait_until(all_listed, 20, "Flower to list every task of the burst with all its events")
    listed = flower.tasks(taskname="webhooks.deliver", state="SUCCESS")
    with new_session() as db:
        burst_deliveries = set(db.scalars(select(Delivery.id).where(Delivery.event_id.in_(burst))))
    assert burst_deliveries <= {t["args"].split()[0] for t in listed.values()}

    # The worker's log went through webhooks.core.logs: JSON lines, the attempt line among them.
    logged = [line for line in worker.log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in logged]
    assert any(r["logger"] == "webhooks.delivery" for r in records)
    assert any(str(r["message"]).endswith(" ready.") for r in records)

    # Its counts: on its exporter port, summed from PROMETHEUS_MULTIPROC_DIR, once every
    # delivery has finished, against the attempts the history holds (a loaded receiver may
    # refuse one first attempt: its retry is then one attempt more, counted as what it was).
    events = [*sent, *burst]
    wait_until(lambda: _succeeded(events) == total, 60, "every delivery to succeed")
    with new_session() as db:
        attempts = db.scalars(
            select(Attempt.response_status).join(Delivery).where(Delivery.event_id.in_(events))
        ).all()
    scraped = requests.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    assert samples[("webhooks_attempts_total", (("status_class", "2xx"),))] == total
    assert samples[("webhooks_deliveries_total", (("outcome", "succeeded"),))] == total
    assert samples[("webhooks_attempt_duration_seconds_count", ())] == len(attempts)
    assert "webhooks_broker_queue_depth" not in scraped  # the API's, not each worker's


def _succeeded(event_ids: list[str]) -> int:
    """How many of these events' deliveries have succeeded."""
    with new_session() as db:
        statuses = db.scalars(select(Delivery.status).where(Delivery.event_id.in_(event_ids)))
        return sum(status == DeliveryStatus.SUCCEEDED for status in statuses)
