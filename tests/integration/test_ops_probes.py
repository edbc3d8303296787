"""``/healthz``, ``/readyz`` and ``/metrics`` on the real database and Redis."""

from __future__ import annotations

import time

from flask.testing import FlaskClient

from tests.api_client import problem
from tests.e2e.broker import environment
from tests.services import free_port


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_ok(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"database": "ok", "broker": "ok"}


def test_readyz_names_a_dead_broker_within_the_budget(client: FlaskClient) -> None:
    with environment(WEBHOOKS_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    body = problem(response, 503)
    assert "broker" in body["detail"] and "database" not in body["detail"]
    assert body["errors"] == [{"field": "broker", "message": "unavailable"}]
    assert elapsed < 2.5


def test_readyz_names_a_dead_database(client: FlaskClient) -> None:
    dead = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing"
    with environment(WEBHOOKS_DATABASE_URL=dead):
        response = client.get("/readyz")
    body = problem(response, 503)
    assert [error["field"] for error in body["errors"]] == ["database"]


def test_metrics_is_prometheus_text(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.get_data(as_text=True)
    for name in (
        "webhooks_events_ingested_total",
        "webhooks_attempt_duration_seconds_bucket",
        "webhooks_dead_letters_total",
        "webhooks_due_retry_backlog",
        'webhooks_broker_queue_depth{queue="deliveries"}',
        "webhooks_broker_up 1.0",
        "webhooks_database_up 1.0",
    ):
        assert name in text, name


def test_metrics_without_a_broker_still_answers(client: FlaskClient) -> None:
    with environment(WEBHOOKS_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        response = client.get("/metrics")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "webhooks_broker_up 0.0" in text
    assert "webhooks_broker_queue_depth{" not in text
    assert "webhooks_due_retry_backlog" in text
