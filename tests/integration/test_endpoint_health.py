"""Automatic endpoint health, seen through the API: 410 Gone and the failing-for-days rule
(failing since a time moved back) disable an endpoint with a reason; enabling it again releases the
deliveries that waited for it."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.api_client import Caller
from tests.integration.history_fixtures import make_delivery, make_endpoint
from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef
from webhooks.delivery.engine import process
from webhooks.models import Endpoint, Tenant
from webhooks.outbound.http import default_transport

BASE = "/v1/tenants/acme"


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[DeliveryRef]:
    sent: list[DeliveryRef] = []
    monkeypatch.setattr(broker, "publish", lambda refs, **_: sent.extend(refs) or len(refs))
    return sent


@pytest.fixture
def caller(as_tenant: Callable[..., Caller]) -> Caller:
    return as_tenant("events:read", "endpoints:read", "endpoints:write")


@pytest.fixture
def endpoint(session: Session, tenant: Tenant, httpserver: HTTPServer) -> Endpoint:
    return make_endpoint(session, tenant, httpserver.url_for("/hook"), retry_schedule=[])


def attempt(session: Session, endpoint: Endpoint) -> str:
    delivery = make_delivery(session, endpoint, status="pending", attempts=0)
    session.commit()
    process(delivery.id, default_transport(), rng=random.Random(1))
    return delivery.id


def test_410_gone_disables_the_endpoint(
    session: Session, endpoint: Endpoint, httpserver: HTTPServer, caller: Caller
) -> None:
    httpserver.expect_request("/hook").respond_with_data("gone", status=410)
    attempt(session, endpoint)
    shown = caller.get(f"{BASE}/endpoints/{endpoint.id}").get_json()
    assert shown["enabled"] is False and "410 Gone" in shown["disabled_reason"]


def test_failing_for_five_days_disables_the_endpoint(
    session: Session,
    endpoint: Endpoint,
    httpserver: HTTPServer,
    caller: Caller,
) -> None:
    httpserver.expect_request("/hook").respond_with_data("down", status=500)
    attempt(session, endpoint)
    # Time passes, as the database's clock sees it: the run of failures started earlier.
    move_back = "UPDATE endpoints SET failing_since = failing_since - CAST(:by AS interval)"
    session.execute(text(move_back), {"by": "4 days 23 hours"})
    session.commit()
    attempt(session, endpoint)
    assert caller.get(f"{BASE}/endpoints/{endpoint.id}").get_json()["enabled"] is True
    session.execute(text(move_back), {"by": "1 hour"})
    session.commit()
    attempt(session, endpoint)
    shown = caller.get(f"{BASE}/endpoints/{endpoint.id}").get_json()
    assert shown["enabled"] is False and "failed for 5 days" in shown["disabled_reason"]


def test_enabling_again_releases_waiting_deliveries(
    session: Session,
    endpoint: Endpoint,
    httpserver: HTTPServer,
    caller: Caller,
    published: list[DeliveryRef],
) -> None:
    httpserver.expect_request("/hook").respond_with_data("gone", status=410)
    attempt(session, endpoint)
    waiting = attempt(session, endpoint)  # parked: the endpoint is disabled
    assert published == []
    response = caller.patch(
        f"{BASE}/endpoints/{endpoint.id}", json={"enabled": True, "verify": False}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["disabled_reason"] is None
    assert [ref.id for ref in published] == [waiting]
