"""The Avionté recipe (docs/recipes/avionte.md), end to end: configured through the API,
delivered by a real worker that reaches the receiver only through an egress proxy."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.e2e.broker import environment
from tests.processes import Worker
from tests.recipes.conftest import Workers
from tests.recipes.recipe import (
    Caller,
    ForwardProxy,
    Received,
    Recipe,
    as_http,
    assert_matches,
    dump,
    hex_hmac,
    history,
    verify_standard,
)
from tests.services import wait_until
from webhooks.delivery.retry import next_delay

pytestmark = pytest.mark.e2e

RECIPE = Recipe("avionte")
TENANT = "acme-production"
SIGNATURE = "X-Payload-Signature"
CASING = {
    name: name
    for name in [
        "Content-Type",
        "User-Agent",
        SIGNATURE,
        "X-api-key",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]
}


@pytest.fixture(scope="module")
def proxy(workers: Workers) -> ForwardProxy:
    return workers.proxy


@pytest.fixture(scope="module")
def worker(workers: Workers) -> Iterator[Worker]:
    """This module's worker, whose deliveries all leave through ``HTTPS_PROXY``."""
    with environment(WEBHOOKS_BROKER_URL=workers.proxied_broker):
        yield workers.proxied


def _status(code: int) -> Callable[[int], Response]:
    return lambda _: Response("", status=code)


def _create(api: Caller, tenant: str, fields: dict[str, object]) -> str:
    created = api.post(f"/v1/tenants/{tenant}/endpoints", json=fields)
    assert created.status_code == 201, created.get_data(as_text=True)
    return str(created.get_json()["id"])


def _send(api: Caller, tenant: str) -> str:
    sent = api.post(f"/v1/tenants/{tenant}/events", json=RECIPE.json("event"))
    assert sent.status_code == 202, sent.get_data(as_text=True)
    return str(sent.get_json()["id"])


def _delivery(api: Caller, tenant: str, event_id: str) -> dict[str, object]:
    [delivery] = api.get(f"/v1/tenants/{tenant}/events/{event_id}").get_json()["deliveries"]
    return dict(delivery)


def test_signed_json_through_the_egress_proxy(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer, proxy: ForwardProxy
) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/avionte/events", _status(201))  # 200 or 201: accepted
    _create(api, TENANT, RECIPE.endpoint("endpoint", receiver.url_for))
    event_id = _send(api, TENANT)
    headers, body = got.wait_for(2)[1]
    dump("avionte-request", as_http("/avionte/events", headers, body, casing=CASING))

    documented = RECIPE.http("request")
    assert_matches(
        documented, "/avionte/events", headers, body,
        varying=frozenset({SIGNATURE.lower()}),
        substitute={json.loads(documented.body)["id"]: event_id},
    )  # fmt: skip
    assert headers[SIGNATURE.lower()] == hex_hmac(body)
    assert verify_standard(body, headers)["id"] == event_id
    wait_until(lambda: _delivery(api, TENANT, event_id)["status"] == "succeeded", 10, "success")
    assert _delivery(api, TENANT, event_id)["last_status_code"] == 201
    # The worker's request went through the proxy (the PING came from the API process).
    assert proxy.seen[-1] == ("POST", got.url)


def test_api_key_instead_of_a_signature(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer, proxy: ForwardProxy
) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/avionte/events-key", _status(200))
    _create(api, TENANT, RECIPE.endpoint("endpoint-api-key", receiver.url_for))
    event_id = _send(api, TENANT)
    headers, body = got.wait_for(2)[1]
    dump("avionte-request-api-key", as_http("/avionte/events-key", headers, body, casing=CASING))
    documented = RECIPE.http("request-api-key")
    assert_matches(
        documented, "/avionte/events-key", headers, body,
        substitute={json.loads(documented.body)["id"]: event_id},
    )  # fmt: skip
    assert headers["x-api-key"] == RECIPE.json("endpoint-api-key")["api_key"]
    assert SIGNATURE.lower() not in headers
    assert proxy.seen[-1] == ("POST", got.url)


def test_one_tenant_per_environment(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    production, staging = tenant_api("acme-production"), tenant_api("acme-staging")
    prod = Received(receiver, "/avionte/production", _status(200))
    stage = Received(receiver, "/avionte/staging", _status(200))
    fields = RECIPE.json("endpoint")
    _create(production, "acme-production", {**fields, "url": prod.url})
    _create(staging, "acme-staging", {**fields, "url": stage.url})
    _send(staging, "acme-staging")
    stage.wait_for(2)
    assert prod.count() == 1  # its PING only
    # A token of one environment cannot touch the other.
    assert staging.get("/v1/tenants/acme-production/endpoints").status_code == 403


def test_the_documented_schedule_is_four_attempts() -> None:
    schedule = RECIPE.json("endpoint")["retry_schedule"]
    assert schedule == [0, 60, 0]
    delays = [next_delay(schedule, n, retry_after=None, rng=random.Random()) for n in (1, 2, 3, 4)]
    assert delays == [0, 60, 0, None]  # then failed, and the dead-letter queue


def test_the_documented_schedule_waits_a_minute_after_the_second_attempt(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    api = tenant_api(TENANT)
    Received(receiver, "/avionte/events", lambda n: Response("", 200 if n == 1 else 500))
    _create(api, TENANT, RECIPE.endpoint("endpoint", receiver.url_for))
    event_id = _send(api, TENANT)
    wait_until(lambda: _delivery(api, TENANT, event_id)["attempts"] == 2, 10, "two attempts")
    delivery = _delivery(api, TENANT, event_id)
    assert delivery["status"] == "retrying"
    first, second = history(api, TENANT, str(delivery["id"]))
    started = [datetime.fromisoformat(a["started_at"]) for a in (first, second)]
    assert (started[1] - started[0]).total_seconds() < 2  # the immediate retry
    wait = datetime.fromisoformat(str(delivery["next_attempt_at"])) - started[1]
    assert 59 <= wait.total_seconds() <= 63


def test_a_short_schedule_runs_to_failed_and_the_dead_letter_queue(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer, dead_letter_file: Path
) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/avionte/events", lambda n: Response("", 200 if n == 1 else 503))
    fields = {**RECIPE.endpoint("endpoint", receiver.url_for), "retry_schedule": [0, 1, 0]}
    _create(api, TENANT, fields)
    event_id = _send(api, TENANT)
    wait_until(lambda: _delivery(api, TENANT, event_id)["status"] == "failed", 15, "failed")
    delivery = _delivery(api, TENANT, event_id)
    assert (delivery["attempts"], delivery["last_status_code"]) == (4, 503)
    assert delivery["next_attempt_at"] is None
    attempts = history(api, TENANT, str(delivery["id"]))
    assert [(a["attempt"], a["response"]["status"]) for a in attempts] == [
        (1, 503),
        (2, 503),
        (3, 503),
        (4, 503),
    ]
    started = [datetime.fromisoformat(a["started_at"]) for a in attempts]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(started)]
    assert gaps[0] < 1 and gaps[1] >= 0.9 and gaps[2] < 1
    assert got.count() == 5  # the PING and four attempts

    def dead_lettered() -> bool:
        lines = dead_letter_file.read_text().splitlines() if dead_letter_file.exists() else []
        return any(json.loads(line)["delivery_id"] == delivery["id"] for line in lines)

    wait_until(dead_lettered, 10, "the dead-letter task to run the handler")
