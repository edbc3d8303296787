"""``/metrics`` moves as deliveries are made: the Celery task run in-process on a real
receiver, the broker a private Redis database (retries and dead letters are published)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.e2e.broker import environment, exclusive_redis_db, queued
from webhooks.admin.tenants import create_tenant
from webhooks.ingest.enqueue import ingest
from webhooks.models import Delivery, Endpoint, Tenant
from webhooks.ops import metrics
from workers.tasks import deliver


@pytest.fixture
def private_broker() -> Iterator[str]:
    with (
        exclusive_redis_db(os.environ["WEBHOOKS_TEST_REDIS_URL"]) as url,
        environment(WEBHOOKS_BROKER_URL=url),
    ):
        yield url


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def one_delivery(session: Session, tenant: Tenant, url: str, **fields: object) -> str:
    """An endpoint of its own event type, and one event of that type for it."""
    event_type = f"test.{url.rsplit('/', 1)[-1]}"
    endpoint = Endpoint(
        tenant_id=tenant.id, url=url, secret="whsec_dGVzdHNlY3JldA==",
        event_types=[event_type], **fields,
    )  # fmt: skip
    session.add(endpoint)
    session.commit()
    ingest(session, tenant=tenant, event_type=event_type, data={"n": 1})
    session.commit()
    return session.scalars(select(Delivery.id).where(Delivery.endpoint_id == endpoint.id)).one()


def test_counters_move_with_attempts(
    client: FlaskClient, session: Session, httpserver: HTTPServer, private_broker: str
) -> None:
    tenant = create_tenant(session, "acme")
    session.commit()
    httpserver.expect_request("/ok").respond_with_data("fine", status=200)
    httpserver.expect_request("/bad").respond_with_data("nope", status=500)
    before = scrape(client)

    ok = one_delivery(session, tenant, httpserver.url_for("/ok"))
    assert value(scrape(client), "webhooks_due_retry_backlog") >= 1  # due, not yet attempted
    deliver(ok)
    flaky = one_delivery(session, tenant, httpserver.url_for("/bad"), retry_schedule=[0])
    deliver(flaky)  # 500, retried: the retry is published with a countdown
    wanted = ("webhooks.deliver", [flaky])
    assert wanted in queued(private_broker, "retries")
    deliver(flaky)  # 500 again: failed for good, dead-lettered
    assert queued(private_broker, "dead_letter") == [("webhooks.dead_letter", [flaky])]
    deliver(flaky)  # a duplicate message: no attempt, nothing counted

    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("webhooks_attempts_total", status_class="2xx") == 1
    assert moved("webhooks_attempts_total", status_class="5xx") == 2
    assert moved("webhooks_deliveries_total", outcome="succeeded") == 1
    assert moved("webhooks_deliveries_total", outcome="retrying") == 1
    assert moved("webhooks_deliveries_total", outcome="failed") == 1
    assert moved("webhooks_attempt_duration_seconds_count") == 3
    assert value(after, "webhooks_broker_queue_depth", queue="dead_letter") == 1
    assert value(after, "webhooks_broker_queue_depth", queue="retries") >= 1
    assert value(after, "webhooks_due_retry_backlog") == 0


def test_an_attempt_without_its_oauth2_token_counts_as_auth(
    client: FlaskClient, session: Session, httpserver: HTTPServer, private_broker: str
) -> None:
    tenant = create_tenant(session, "acme")
    session.commit()
    httpserver.expect_request("/token").respond_with_data("down", status=503)
    httpserver.expect_request("/hook").respond_with_data("fine", status=200)
    auth = {"type": "oauth2", "token_url": httpserver.url_for("/token"), "client_id": "a",
            "client_secret": "b"}  # fmt: skip
    before = scrape(client)
    delivery_id = one_delivery(session, tenant, httpserver.url_for("/hook"), auth=auth)
    deliver(delivery_id)
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("webhooks_attempts_total", status_class="auth") == 1
    assert moved("webhooks_deliveries_total", outcome="retrying") == 1  # on the schedule
    assert [request.path for request, _ in httpserver.log] == ["/token"]
    session.expire_all()
    retrying = session.get(Delivery, delivery_id)
    assert retrying is not None and (retrying.status, retrying.attempts) == ("retrying", 1)


def test_event_ingested_counts_events_and_their_deliveries(client: FlaskClient) -> None:
    before = scrape(client)
    metrics.event_ingested(3)
    after = scrape(client)
    assert (
        value(after, "webhooks_events_ingested_total")
        - value(before, "webhooks_events_ingested_total")
        == 1
    )
    assert (
        value(after, "webhooks_deliveries_enqueued_total")
        - value(before, "webhooks_deliveries_enqueued_total")
        == 3
    )


def test_status_classes() -> None:
    from webhooks.outbound.outcome import Outcome

    assert metrics.status_class(Outcome(204, {}, b"", None, 5)) == "2xx"
    assert metrics.status_class(Outcome(307, {}, b"", "redirect", 5)) == "redirect"
    assert metrics.status_class(Outcome(None, {}, b"", "timeout", 5)) == "timeout"
    assert metrics.status_class(Outcome(429, {}, b"", None, 5)) == "4xx"
