"""The Trivore ID recipe (docs/recipes/trivore-id.md), end to end: the thin payload and the
Slack-compatible message, configured through the API, delivered by a real worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from tests.recipes.recipe import (
    Caller,
    Received,
    Recipe,
    as_http,
    assert_matches,
    dump,
    history,
    verify_standard,
)
from tests.services import wait_until

pytestmark = pytest.mark.e2e

RECIPE = Recipe("trivore-id")
TENANT = "trivore"
ENDPOINTS = f"/v1/tenants/{TENANT}/endpoints"
EVENTS = f"/v1/tenants/{TENANT}/events"
CASING = {
    name: name
    for name in [
        "Content-Type",
        "User-Agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]
}
#: Trivore ID's own example, compact.
SEED_EXAMPLE = {
    "id": "IDNUMBER1234",
    "entityType": "USER",
    "eventType": "UPDATE",
    "timestamp": "2019-01-01T00:00:00Z",
}


def _create(api: Caller, fields: dict[str, object]) -> str:
    created = api.post(ENDPOINTS, json=fields)
    assert created.status_code == 201, created.get_data(as_text=True)
    return str(created.get_json()["id"])


def _delivery(api: Caller, event_id: str) -> dict[str, object]:
    [delivery] = api.get(f"{EVENTS}/{event_id}").get_json()["deliveries"]
    return dict(delivery)


def test_the_thin_payload(tenant_api: Callable[[str], Caller], receiver: HTTPServer) -> None:
    api = tenant_api(TENANT)
    got = Received(receiver, "/trivore/webhook", lambda _: Response("OK", 200))
    _create(api, RECIPE.endpoint("endpoint", receiver.url_for))
    sent = api.post(EVENTS, json=RECIPE.json("event"))
    assert sent.status_code == 202
    headers, body = got.wait_for(2)[1]
    dump("trivore-request", as_http("/trivore/webhook", headers, body, casing=CASING))
    assert_matches(RECIPE.http("request"), "/trivore/webhook", headers, body)
    assert body == json.dumps(SEED_EXAMPLE, separators=(",", ":")).encode()
    assert verify_standard(body, headers) == SEED_EXAMPLE
    event_id = sent.get_json()["id"]
    wait_until(lambda: _delivery(api, event_id)["status"] == "succeeded", 10, "succeeded")


def test_an_error_is_retried_later(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    api = tenant_api(TENANT)
    answers = {2: Response("sync failed: no such user", 400)}  # the first delivery attempt
    got = Received(receiver, "/trivore/webhook", lambda n: answers.get(n, Response("OK", 200)))
    _create(api, RECIPE.endpoint("endpoint", receiver.url_for))
    event_id = api.post(EVENTS, json=RECIPE.json("event")).get_json()["id"]
    wait_until(lambda: _delivery(api, event_id)["status"] == "retrying", 10, "retrying")
    waiting = _delivery(api, event_id)
    [failed] = history(api, TENANT, str(waiting["id"]))
    assert failed["response"]["status"] == 400
    assert failed["response"]["body"] == "sync failed: no such user"
    wait = datetime.fromisoformat(str(waiting["next_attempt_at"])) - datetime.fromisoformat(
        failed["started_at"]
    )
    assert 4 <= wait.total_seconds() <= 6.5  # the default schedule's first retry: 5 s ± 20 %
    wait_until(lambda: _delivery(api, event_id)["status"] == "succeeded", 10, "the retry")
    assert got.count() == 3  # the PING, the 400, the 200
    _, first = got.requests[1]
    _, again = got.requests[2]
    assert first == again == json.dumps(SEED_EXAMPLE, separators=(",", ":")).encode()


def test_the_slack_compatible_message(
    tenant_api: Callable[[str], Caller], receiver: HTTPServer
) -> None:
    api = tenant_api(TENANT)
    fields = RECIPE.endpoint("endpoint-slack", receiver.url_for)
    path = fields["url"].removeprefix(receiver.url_for(""))
    path = "/" + path.lstrip("/")
    got = Received(receiver, path, lambda _: Response("ok", 200, mimetype="text/html"))
    endpoint_id = _create(api, fields)
    _, ping = got.wait_for(1)[0]
    assert json.loads(ping)["text"].startswith("Trivore ID ping:    at ")

    assert api.post(EVENTS, json=RECIPE.json("event")).status_code == 202
    headers, body = got.wait_for(2)[1]
    dump("trivore-request-slack", as_http(path, headers, body, casing=CASING))
    assert_matches(RECIPE.http("request-slack"), path, headers, body)
    assert json.loads(body) == {
        "text": "Trivore ID user.updated: USER IDNUMBER1234 UPDATE at 2019-01-01T00:00:00Z"
    }
    secret = api.get(f"{ENDPOINTS}/{endpoint_id}/secret").get_json()["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret).verify(body, headers)  # a whsec_ secret is passed as the string it is

    # Whatever a value holds, the message stays one valid {"text": ...}.
    tricky = {"id": 'x"}, "blocks": [1]\n\\', "entityType": "USER", "eventType": "UPDATE"}
    event = {"type": "user.created", "timestamp": "2019-01-01T00:00:00Z", "data": tricky}
    assert api.post(EVENTS, json=event).status_code == 202
    _, body = got.wait_for(3)[2]
    assert json.loads(body) == {
        "text": f"Trivore ID user.created: USER {tricky['id']} UPDATE at 2019-01-01T00:00:00Z"
    }
