"""The Umbrella Faces recipe (docs/recipes/umbrella-faces.md), end to end: configured through
the API, delivered by a real worker, checked at a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.recipes.recipe import (
    Caller,
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
from webhooks.core.errors import TargetRefused
from webhooks.delivery.retry import next_delay
from webhooks.outbound import ssrf

pytestmark = pytest.mark.e2e

RECIPE = Recipe("umbrella-faces")
TENANT = "umbrella"
ENDPOINTS = f"/v1/tenants/{TENANT}/endpoints"
SIGNATURE = "X-FacesWebhookSignature"


def _status(code: int) -> Response:
    return Response("", status=code)


def _delivery(api: Caller, event_id: str) -> dict[str, object]:
    event = api.get(f"/v1/tenants/{TENANT}/events/{event_id}")
    assert event.status_code == 200
    [delivery] = event.get_json()["deliveries"]
    return dict(delivery)


def test_the_ping_on_create_and_update_must_succeed(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/webhooks/faces", lambda n: _status(500 if n == 1 else 200))
    fields = RECIPE.endpoint("endpoint", receiver.url_for)

    refused = api.post(ENDPOINTS, json=fields)
    assert refused.status_code == 422
    assert refused.mimetype == "application/problem+json"
    assert api.get(ENDPOINTS).get_json()["data"] == []

    created = api.post(ENDPOINTS, json=fields)
    assert created.status_code == 201, created.get_data(as_text=True)
    endpoint = created.get_json()
    assert "secret" not in endpoint
    headers, body = got.wait_for(2)[1]
    ping = json.loads(body)
    dump("umbrella-ping", as_http("/webhooks/faces", headers, body, casing=_casing()))
    assert headers[SIGNATURE.lower()] == hex_hmac(body)
    assert verify_standard(body, headers) == ping
    documented = RECIPE.http("ping")
    assert_matches(
        documented, "/webhooks/faces", headers, body,
        varying=frozenset({SIGNATURE.lower(), "content-length"}),
        substitute={json.loads(documented.body)["timestamp"]: ping["timestamp"]},
    )  # fmt: skip

    # An update of the URL is PINGed too; a failing PING leaves the endpoint as it was.
    moved = api.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"url": receiver.url_for("/gone")})
    assert moved.status_code == 422
    assert api.get(f"{ENDPOINTS}/{endpoint['id']}").get_json()["url"] == fields["url"]
    # A change that alters nothing on the wire is not.
    described = api.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"description": "Faces"})
    assert described.status_code == 200
    assert got.count() == 2


def _casing() -> dict[str, str]:
    """How the dispatcher spells the headers it sets (for examples written to the doc)."""
    names = ["Content-Type", "User-Agent", SIGNATURE, "webhook-id", "webhook-timestamp"]
    return {name: name for name in [*names, "webhook-signature"]}


def test_a_notification_is_the_documented_bytes_and_signature(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/webhooks/faces")
    created = api.post(ENDPOINTS, json=RECIPE.endpoint("endpoint", receiver.url_for))
    assert created.status_code == 201, created.get_data(as_text=True)

    sent = api.post(f"/v1/tenants/{TENANT}/events", json=RECIPE.json("event"))
    assert sent.status_code == 202
    assert sent.get_json()["deliveries"] == 1
    headers, body = got.wait_for(2)[1]
    dump("umbrella-request", as_http("/webhooks/faces", headers, body, casing=_casing()))

    assert_matches(RECIPE.http("request"), "/webhooks/faces", headers, body)
    assert headers[SIGNATURE.lower()] == RECIPE.text("signature") == hex_hmac(body)
    payload = verify_standard(body, headers)
    assert payload == {
        "profileType": "TRAVELLER",
        "event": "UPDATE",
        "uuid": "25b46ba4-0e9e-4baa-83bd-ac21a50ef998",
        "company": {"uuid": "34f277f5-2618-4c9e-aa08-affa9f02dfaa"},
        "timestamp": "2026-11-22T10:00:00Z",
    }
    assert headers["webhook-id"] == sent.get_json()["id"]
    event_id = sent.get_json()["id"]
    wait_until(lambda: _delivery(api, event_id)["status"] == "succeeded", 10, "succeeded")


def test_retries_follow_the_chosen_schedule(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    schedule = RECIPE.json("endpoint")["retry_schedule"]
    delays = [next_delay(schedule, n, retry_after=None, rng=random.Random()) for n in range(1, 8)]
    assert delays == [300, 300, 300, 300, 300, None, None]  # 6 attempts, then failed

    api = tenant_api(TENANT)
    got = Received(receiver, "/webhooks/faces", lambda n: _status(200 if n == 1 else 503))
    created = api.post(ENDPOINTS, json=RECIPE.endpoint("endpoint", receiver.url_for))
    assert created.status_code == 201
    event_id = api.post(f"/v1/tenants/{TENANT}/events", json=RECIPE.json("event")).get_json()["id"]
    wait_until(lambda: _delivery(api, event_id)["status"] == "retrying", 10, "retrying")
    delivery = _delivery(api, event_id)
    assert (delivery["attempts"], delivery["last_status_code"]) == (1, 503)
    [attempt] = history(api, TENANT, str(delivery["id"]))
    assert (attempt["response"]["status"], attempt["request"]["headers"][SIGNATURE]) == (
        503,
        "[redacted]",
    )
    started = datetime.fromisoformat(attempt["started_at"])
    wait = datetime.fromisoformat(str(delivery["next_attempt_at"])) - started
    assert 299 <= wait.total_seconds() <= 305
    assert got.count() == 2  # the PING and the one attempt


def test_http_urls_are_refused_in_production() -> None:
    production = ssrf.TargetPolicy(allow_http=False)
    with pytest.raises(TargetRefused, match="https://"):
        ssrf.check_url("http://faces-receiver.example.com/webhooks/faces", production)
    ssrf.check_url(RECIPE.json("endpoint")["url"], production)
