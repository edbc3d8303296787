"""The TProfile recipe (docs/recipes/tprofile.md), end to end: configured through the API,
delivered by a real worker, checked at a real receiver and in the run history."""

from __future__ import annotations

import json
from collections.abc import Callable

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
    history,
    run_history,
    verify_standard,
)
from tests.services import wait_until

pytestmark = pytest.mark.e2e

RECIPE = Recipe("tprofile")
TENANT = "tprofile"
ENDPOINTS = f"/v1/tenants/{TENANT}/endpoints"
EVENTS = f"/v1/tenants/{TENANT}/events"
CASING = {
    name: name
    for name in [
        "Content-Type",
        "User-Agent",
        "X-Source",
        "X-Environment",
        "X-Webhook-Secret",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]
}


def _answer(_: int) -> Response:
    return Response('{"received": true}', 200, {"X-Request-Id": "tp-1"}, "application/json")


def _create(api: Caller, fields: dict[str, object]) -> str:
    created = api.post(ENDPOINTS, json=fields)
    assert created.status_code == 201, created.get_data(as_text=True)
    return str(created.get_json()["id"])


def _deliveries(api: Caller, event_id: str) -> list[dict[str, object]]:
    return list(api.get(f"{EVENTS}/{event_id}").get_json()["deliveries"])


def test_template_headers_and_secret_header(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/hooks/bookings", _answer)
    _create(api, RECIPE.endpoint("endpoint", receiver.url_for))
    _, ping = got.wait_for(1)[0]
    assert ping == b'{"eventType":"ping","bookingId":""}'

    sent = api.post(EVENTS, json=RECIPE.json("event"))
    assert sent.status_code == 202 and sent.get_json()["deliveries"] == 1
    headers, body = got.wait_for(2)[1]
    dump("tprofile-request", as_http("/hooks/bookings", headers, body, casing=CASING))
    assert_matches(RECIPE.http("request"), "/hooks/bookings", headers, body)
    assert body == b'{"eventType":"booking.created","bookingId":"BK-20261122-0042"}'
    assert headers["x-webhook-secret"] == "S3cret!"
    assert verify_standard(body, headers) == json.loads(body)


def test_multiple_events_and_only_those(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/hooks/bookings", _answer)
    _create(api, RECIPE.endpoint("endpoint", receiver.url_for))
    counts = {}
    for event_type in ["booking.created", "booking.updated", "booking.cancelled", "traveller.x"]:
        event = {"type": event_type, "data": {"booking": {"id": 7}}}
        counts[event_type] = api.post(EVENTS, json=event).get_json()["deliveries"]
    assert counts == {
        "booking.created": 1,
        "booking.updated": 1,
        "booking.cancelled": 1,
        "traveller.x": 0,
    }
    bodies = sorted(body for _, body in got.wait_for(4)[1:])
    assert bodies == [
        b'{"eventType":"booking.cancelled","bookingId":"7"}',
        b'{"eventType":"booking.created","bookingId":"7"}',
        b'{"eventType":"booking.updated","bookingId":"7"}',
    ]


def test_any_content_type(tenant_api: Callable[[str], Caller], receiver: HTTPServer) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/hooks/form", _answer)
    _create(api, RECIPE.endpoint("endpoint-form", receiver.url_for))
    assert api.post(EVENTS, json=RECIPE.json("event")).status_code == 202
    headers, body = got.wait_for(2)[1]
    dump("tprofile-request-form", as_http("/hooks/form", headers, body, casing=CASING))
    assert_matches(RECIPE.http("request-form"), "/hooks/form", headers, body)
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert verify_standard(body, headers, json_parse=False) is None


def test_run_history_has_request_and_response_bodies_and_headers(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/hooks/bookings", _answer)
    endpoint_id = _create(api, RECIPE.endpoint("endpoint", receiver.url_for))
    event_id = api.post(EVENTS, json=RECIPE.json("event")).get_json()["id"]
    wait_until(lambda: _deliveries(api, event_id)[0]["status"] == "succeeded", 10, "the delivery")
    [delivery] = _deliveries(api, event_id)
    [attempt] = history(api, TENANT, str(delivery["id"]))
    newest, ping = run_history(api, TENANT, endpoint_id)
    assert newest == attempt
    assert (ping["delivery_id"], ping["request"]["body"]) == (
        None,
        '{"eventType":"ping","bookingId":""}',
    )
    dump("tprofile-attempt", json.dumps(attempt, indent=2))
    assert got.count() == 2

    documented = RECIPE.json("attempt")
    for name in ("id", "delivery_id", "started_at", "duration_ms"):
        assert type(attempt[name]) is type(documented[name]), name
    assert attempt["attempt"] == documented["attempt"] == 1
    assert attempt["error"] is documented["error"] is None
    assert attempt["request"]["url"] == receiver.url_for("/hooks/bookings")
    assert attempt["request"]["body"] == documented["request"]["body"]
    sent, shown = attempt["request"]["headers"], documented["request"]["headers"]
    assert sent.keys() == shown.keys()
    for name in sent.keys() - {"webhook-id", "webhook-timestamp"}:
        assert sent[name] == shown[name], name
    assert sent["webhook-signature"] == sent["X-Webhook-Secret"] == "[redacted]"
    response, shown = attempt["response"], documented["response"]
    assert (response["status"], response["body"]) == (200, '{"received": true}')
    assert (response["status"], response["body"]) == (shown["status"], shown["body"])
    assert response["headers"].keys() == shown["headers"].keys()
    assert response["headers"]["X-Request-Id"] == shown["headers"]["X-Request-Id"] == "tp-1"
