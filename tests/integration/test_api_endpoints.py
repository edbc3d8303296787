"""Endpoints through the API: fields and their rules, PING verification, isolation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response

from tests.api_client import Caller, fields_of, problem
from webhooks.models import Attempt, Endpoint, Tenant

ENDPOINTS = "/v1/tenants/acme/endpoints"

RESPONSE_FIELDS = {
    "id",
    "url",
    "description",
    "event_types",
    "enabled",
    "disabled_reason",
    "previous_secret_expires_at",
    "signature_header",
    "api_key_header",
    "headers",
    "content_type",
    "template",
    "retry_schedule",
    "timeout_seconds",
    "signing",
    "public_key",
    "auth",
    "client_certificate",
    "filter",
    "rate_limit",
    "ordering",
    "circuit",
    "created_at",
    "updated_at",
}


@pytest.fixture
def receiver(httpserver: HTTPServer) -> str:
    """A receiver on 127.0.0.1 that answers every POST to /hook with 204."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    return httpserver.url_for("/hook")


def _count(session: Session, model: type[Any]) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_create_pings_then_stores_with_defaults(
    admin: Caller, tenant: Tenant, receiver: str, httpserver: HTTPServer, session: Session
) -> None:
    response = admin.post(ENDPOINTS, json={"url": receiver})
    assert response.status_code == 201, response.get_json()
    endpoint = response.get_json()
    assert set(endpoint) == RESPONSE_FIELDS
    assert endpoint["url"] == receiver and endpoint["id"].startswith("ep_")
    assert (endpoint["description"], endpoint["event_types"], endpoint["headers"]) == ("", [], {})
    assert (endpoint["enabled"], endpoint["content_type"]) == (True, "application/json")
    assert (endpoint["retry_schedule"], endpoint["timeout_seconds"]) == (None, 10)
    for field in ("signature_header", "api_key_header", "template", "disabled_reason"):
        assert endpoint[field] is None
    assert endpoint["signing"] == "hmac"
    assert (endpoint["public_key"], endpoint["auth"], endpoint["client_certificate"]) == (
        None,
        None,
        None,
    )
    assert (endpoint["filter"], endpoint["rate_limit"]) == (None, None)
    assert (endpoint["ordering"], endpoint["circuit"]) == ("none", "closed")

    [(request, _)] = httpserver.log
    secret = admin.get(f"{ENDPOINTS}/{endpoint['id']}/secret").get_json()["secret"]
    assert secret.startswith("whsec_")
    ping = Webhook(secret).verify(request.get_data(), dict(request.headers))
    assert ping["type"] == "ping" and ping["data"] == {}
    assert set(ping) == {"id", "type", "timestamp", "data"}

    attempt = session.scalars(select(Attempt)).one()
    assert (attempt.endpoint_id, attempt.delivery_id, attempt.response_status) == (
        endpoint["id"],
        None,
        204,
    )


def test_every_field_is_stored(admin: Caller, tenant: Tenant, receiver: str) -> None:
    body = {
        "url": receiver,
        "description": "Umbrella Faces",
        "event_types": ["traveller.*", "booking.created", "booking.created"],
        "enabled": False,
        "secret": "S3cret!",
        "signature_header": "X-FacesWebhookSignature",
        "api_key_header": "X-api-key",
        "api_key": "key-123",
        "headers": {"X-Tenant": "acme", "User-Agent": "custom"},
        "content_type": "application/vnd.faces+json",
        "template": '{"uuid": "[data.uuid]", "event": [type]}',
        "retry_schedule": [0, 60, 0],
        "timeout_seconds": 5,
        "filter": {"data.status": "confirmed", "data.amount": {"$gt": 1000}},
        "rate_limit": 0.5,
        "ordering": "fifo",
    }
    endpoint = admin.post(ENDPOINTS, json=body).get_json()
    expected = {k: v for k, v in body.items() if k not in ("secret", "api_key")}
    expected["event_types"] = ["traveller.*", "booking.created"]
    assert {k: endpoint[k] for k in expected} == expected


def test_secret_and_api_key_never_appear_in_bodies(
    admin: Caller, tenant: Tenant, receiver: str
) -> None:
    body = {"url": receiver, "secret": "S3cret!XYZ", "api_key_header": "X-Key", "api_key": "k-999"}
    created = admin.post(ENDPOINTS, json=body)
    path = f"{ENDPOINTS}/{created.get_json()['id']}"
    responses = [
        created,
        admin.get(path),
        admin.get(ENDPOINTS),
        admin.patch(path, json={"description": "x"}),
    ]
    for response in responses:
        text = response.get_data(as_text=True)
        assert response.status_code < 300
        assert "S3cret!XYZ" not in text and "k-999" not in text and '"secret"' not in text
    assert admin.get(f"{path}/secret").get_json() == {"secret": "S3cret!XYZ"}


def test_a_failing_ping_stores_nothing(
    admin: Caller, tenant: Tenant, httpserver: HTTPServer, session: Session
) -> None:
    httpserver.expect_request("/hook").respond_with_data("nope", status=500)
    body = problem(admin.post(ENDPOINTS, json={"url": httpserver.url_for("/hook")}), 422)
    assert "500" in body["detail"] and body["errors"][0]["field"] == "url"
    assert (_count(session, Endpoint), _count(session, Attempt)) == (0, 0)


def test_a_ping_timeout_stores_nothing(
    admin: Caller, tenant: Tenant, httpserver: HTTPServer, session: Session
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response("late")

    httpserver.expect_request("/hook").respond_with_handler(slow)
    url = httpserver.url_for("/hook")
    body = problem(admin.post(ENDPOINTS, json={"url": url, "timeout_seconds": 1}), 422)
    assert "timeout" in body["detail"]
    assert _count(session, Endpoint) == 0


def test_verify_false_skips_the_ping(admin: Caller, tenant: Tenant, httpserver: HTTPServer) -> None:
    url = httpserver.url_for("/down")  # nothing expected: it would answer 500
    assert admin.post(ENDPOINTS, json={"url": url, "verify": False}).status_code == 201
    assert httpserver.log == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:10.0.0.1]/",
        "http://192.168.1.1:8080/",
        "ftp://127.0.0.1/",
        "http://user:pass@127.0.0.1/",
        "http://no-such-host.invalid/",
    ],
)
def test_refused_targets_are_422_saying_why(admin: Caller, tenant: Tenant, url: str) -> None:
    body = problem(admin.post(ENDPOINTS, json={"url": url, "verify": False}), 422)
    assert body["errors"] == [{"field": "url", "message": body["detail"]}]
    assert "URL" in body["detail"]


def _headers(count: int) -> dict[str, str]:
    return {f"X-H{n}": "v" for n in range(count)}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": None}, "url"),
        ({"headers": {"Host": "evil"}}, "headers.Host"),
        ({"headers": {"host": "evil"}}, "headers.host"),
        ({"headers": {"Connection": "close"}}, "headers.Connection"),
        ({"headers": {"Keep-Alive": "1"}}, "headers.Keep-Alive"),
        ({"headers": {"Proxy-Authorization": "x"}}, "headers.Proxy-Authorization"),
        ({"headers": {"TE": "trailers"}}, "headers.TE"),
        ({"headers": {"Trailer": "x"}}, "headers.Trailer"),
        ({"headers": {"Transfer-Encoding": "chunked"}}, "headers.Transfer-Encoding"),
        ({"headers": {"Upgrade": "h2c"}}, "headers.Upgrade"),
        ({"headers": {"Content-Length": "1"}}, "headers.Content-Length"),
        ({"headers": {"Content-Type": "text/plain"}}, "headers.Content-Type"),
        ({"headers": {"webhook-signature": "v1,x"}}, "headers.webhook-signature"),
        ({"headers": {"Webhook-Id": "1"}}, "headers.Webhook-Id"),
        ({"headers": {"Bad Name": "x"}}, "headers.Bad Name"),
        ({"headers": {"X-Ok": "a\r\nInjected: 1"}}, "headers.X-Ok"),
        ({"headers": {"X-Ok": "snowman \u2603"}}, "headers.X-Ok"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, "headers.x-a"),
        ({"headers": _headers(51)}, "headers"),
        ({"headers": {"X-A": 1}}, "headers.X-A.value"),
        ({"signature_header": "Webhook-Signature"}, "signature_header"),
        ({"signature_header": "X Sig"}, "signature_header"),
        ({"signature_header": "Host"}, "signature_header"),
        ({"api_key_header": "X-Key"}, "api_key"),
        ({"api_key": "k"}, "api_key_header"),
        ({"api_key_header": "Connection", "api_key": "k"}, "api_key_header"),
        ({"api_key_header": "X-Key", "api_key": "a\nb"}, "api_key"),
        (
            {"signature_header": "X-Sig", "api_key_header": "x-sig", "api_key": "k"},
            "api_key_header",
        ),
        ({"api_key_header": "X-Key", "api_key": "k", "headers": {"x-key": "v"}}, "headers.x-key"),
        ({"content_type": "nonsense"}, "content_type"),
        ({"content_type": "text/plain\r\nX-Injected: 1"}, "content_type"),
        ({"content_type": "text/" + "x" * 200}, "content_type"),
        ({"template": '{"a": [type]'}, "template"),
        ({"template": '{"a": "[type]"} trailing'}, "template"),
        ({"template": "x" * 65_537, "content_type": "text/plain"}, "template"),
        ({"template": "a\x00b", "content_type": "text/plain"}, "template"),
        ({"retry_schedule": [-1]}, "retry_schedule.0"),
        ({"retry_schedule": [0, 7 * 86400 + 1]}, "retry_schedule.1"),
        ({"retry_schedule": [1] * 51}, "retry_schedule"),
        ({"retry_schedule": ["60"]}, "retry_schedule.0"),
        ({"retry_schedule": [1.5]}, "retry_schedule.0"),
        ({"retry_schedule": [True]}, "retry_schedule.0"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 31}, "timeout_seconds"),
        ({"timeout_seconds": "10"}, "timeout_seconds"),
        ({"secret": "S3cre"}, "secret"),
        ({"secret": "x" * 129}, "secret"),
        ({"secret": "tab\there"}, "secret"),
        ({"secret": "whsec_!!!!"}, "secret"),
        ({"secret": "whsec_AAAAAAAAAAAAAA=="}, "secret"),  # 10 bytes: too short a key
        ({"event_types": ["booking created"]}, "event_types"),
        ({"event_types": ["booking.*.x"]}, "event_types"),
        ({"event_types": "booking.*"}, "event_types"),
        ({"enabled": "yes"}, "enabled"),
        ({"description": "x" * 1025}, "description"),
        ({"verify": "no"}, "verify"),
        ({"colour": "red"}, "colour"),
        ({"filter": "data.status"}, "filter"),
        ({"filter": ["data.status"]}, "filter"),
        ({"filter": {"data..status": 1}}, "filter.data..status"),
        ({"filter": {"data.amount": {"$gt": "a", "$between": 1}}}, "filter.data.amount.$between"),
        ({"filter": {"data.amount": {"$gt": [1]}}}, "filter.data.amount.$gt"),
        ({"filter": {"data.status": {"$in": "x"}}}, "filter.data.status.$in"),
        (
            {"filter": {"$or": [{"type": "a"}, {"data.x": {"$exists": "yes"}}]}},
            "filter.$or.1.data.x.$exists",
        ),
        ({"filter": {"$nor": []}}, "filter.$nor"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"rate_limit": 10_001}, "rate_limit"),
        ({"rate_limit": "5"}, "rate_limit"),
        ({"rate_limit": True}, "rate_limit"),
        ({"rate_limit": 10**400}, "rate_limit"),
        ({"ordering": "lifo"}, "ordering"),
        ({"ordering": 1}, "ordering"),
        ({"circuit": "open"}, "circuit"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    admin: Caller, tenant: Tenant, receiver: str, fields: dict[str, Any], field: str
) -> None:
    body = {"url": receiver, "verify": False, **fields}
    assert fields_of(admin.post(ENDPOINTS, json=body)) == {field}


@pytest.mark.parametrize(
    "fields",
    [
        {"secret": "S3cret!"},
        {"secret": "whsec_" + "A" * 32},
        {"secret": "whsec_" + "A" * 86 + "=="},  # 64 bytes
        {"template": "[type] happened", "content_type": "text/plain; charset=utf-8"},
        {"template": '{"items": [1, 2], "ok": [true], "t": "[type]", "d": [data]}'},
        {"headers": {"User-Agent": "mine", "X-Obs": "caf\u00e9"}},
        {"retry_schedule": []},
        {"retry_schedule": [0] * 50},
        {"event_types": ["booking.*", "a-b_c.d"]},
        {"rate_limit": 0.001},
        {"rate_limit": 10_000},
        {"rate_limit": 5},
        {"ordering": "none"},
        {"filter": {}},
        {"filter": {"$not": {"$or": [{"type": "a"}, {"data.tags": {"$contains": "vip"}}]}}},
    ],
)
def test_valid_edge_values_are_accepted(
    admin: Caller, tenant: Tenant, receiver: str, fields: dict[str, Any]
) -> None:
    response = admin.post(ENDPOINTS, json={"url": receiver, **fields})
    assert response.status_code == 201, response.get_json()


def test_patch_changes_a_subset_and_null_resets(
    admin: Caller, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    created = admin.post(
        ENDPOINTS,
        json={
            "url": receiver,
            "description": "first",
            "signature_header": "X-Sig",
            "retry_schedule": [1, 2],
            "event_types": ["a.*"],
        },
    ).get_json()
    path = f"{ENDPOINTS}/{created['id']}"
    changed = admin.patch(path, json={"description": "second", "timeout_seconds": 3}).get_json()
    assert (changed["description"], changed["timeout_seconds"]) == ("second", 3)
    assert changed["retry_schedule"] == [1, 2] and changed["url"] == receiver
    assert len(httpserver.log) == 1, "a description change is not PINGed"

    reset = admin.patch(
        path,
        json={"description": None, "retry_schedule": None, "event_types": None, "enabled": None},
    ).get_json()
    assert (reset["description"], reset["retry_schedule"], reset["event_types"]) == ("", None, [])
    assert reset["enabled"] is True

    assert admin.patch(path, json={"signature_header": None}).get_json()["signature_header"] is None
    assert len(httpserver.log) == 2, "a signature header change is PINGed"
    assert fields_of(admin.patch(path, json={"url": None})) == {"url"}
    assert fields_of(admin.patch(path, json={"timeout_seconds": 99})) == {"timeout_seconds"}
    assert admin.get(path).get_json()["timeout_seconds"] == 3


def test_patch_of_ping_fields_is_verified_and_refused_on_failure(
    admin: Caller, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    created = admin.post(ENDPOINTS, json={"url": receiver}).get_json()
    path = f"{ENDPOINTS}/{created['id']}"
    httpserver.expect_request("/other", method="POST").respond_with_data("", status=200)
    other = httpserver.url_for("/other")
    assert admin.patch(path, json={"url": other}).get_json()["url"] == other
    assert httpserver.log[-1][0].path == "/other"

    httpserver.expect_request("/broken").respond_with_data("down", status=503)
    broken = httpserver.url_for("/broken")
    body = problem(admin.patch(path, json={"url": broken, "description": "x"}), 422)
    assert "503" in body["detail"]
    assert admin.get(path).get_json()["url"] == other
    assert admin.get(path).get_json()["description"] == ""

    unverified = admin.patch(path, json={"url": broken, "verify": False}).get_json()
    assert unverified["url"] == broken
    problem(admin.patch(path, json={"url": "http://10.1.2.3/", "verify": False}), 422)


def test_patch_of_each_request_shaping_field_sends_a_ping(
    admin: Caller, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    path = f"{ENDPOINTS}/{admin.post(ENDPOINTS, json={'url': receiver}).get_json()['id']}"
    changes: list[dict[str, Any]] = [
        {"secret": "S3cret!"},
        {"signature_header": "X-Sig"},
        {"api_key_header": "X-Key", "api_key": "k1"},
        {"api_key": "k2"},
        {"headers": {"X-A": "1"}},
        {"content_type": "application/vnd.x+json"},
        {"template": '{"t": "[type]"}'},
    ]
    for number, change in enumerate(changes, start=2):
        assert admin.patch(path, json=change).status_code == 200
        assert len(httpserver.log) == number, change
    admin.patch(path, json={"headers": {"X-A": "1"}})  # no actual change
    assert len(httpserver.log) == len(changes) + 1
    last = httpserver.log[-1][0]
    assert (last.headers["X-Key"], last.headers["X-A"]) == ("k2", "1")
    assert json.loads(last.get_data())["t"] == "ping"


def test_patch_secret_replaces_it_at_once(
    admin: Caller, tenant: Tenant, receiver: str, httpserver: HTTPServer
) -> None:
    path = f"{ENDPOINTS}/{admin.post(ENDPOINTS, json={'url': receiver}).get_json()['id']}"
    admin.post(f"{path}/rotate-secret")
    admin.patch(path, json={"secret": "brand-new-secret"})
    request = httpserver.log[-1][0]
    assert len(request.headers["webhook-signature"].split()) == 1
    Webhook(b"brand-new-secret").verify(request.get_data(), dict(request.headers))


def test_delete(admin: Caller, tenant: Tenant, receiver: str) -> None:
    path = f"{ENDPOINTS}/{admin.post(ENDPOINTS, json={'url': receiver}).get_json()['id']}"
    assert admin.delete(path).status_code == 204
    problem(admin.get(path), 404)
    problem(admin.delete(path), 404)
    problem(admin.get(f"{ENDPOINTS}/ep_01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404)


def test_tenant_isolation_both_ways(
    admin: Caller,
    as_tenant: Callable[..., Caller],
    tenant: Tenant,
    other_tenant: Tenant,
    receiver: str,
) -> None:
    acme = as_tenant("endpoints:read", "endpoints:write")
    globex = as_tenant("endpoints:read", "endpoints:write", of=other_tenant)
    ids = {
        name: caller.post(
            f"/v1/tenants/{name}/endpoints", json={"url": receiver, "verify": False}
        ).get_json()["id"]
        for name, caller in (("acme", acme), ("globex", globex))
    }
    for caller, own, other in ((acme, "acme", "globex"), (globex, "globex", "acme")):
        problem(caller.get(f"/v1/tenants/{other}/endpoints"), 403)
        problem(caller.get(f"/v1/tenants/{other}/endpoints/{ids[other]}"), 403)
        problem(caller.post(f"/v1/tenants/{other}/endpoints", json={"url": receiver}), 403)
        for method in ("get", "patch", "delete"):
            problem(getattr(caller, method)(f"/v1/tenants/{own}/endpoints/{ids[other]}"), 404)
        for suffix in ("secret", "rotate-secret", "ping"):
            method = "get" if suffix == "secret" else "post"
            path = f"/v1/tenants/{own}/endpoints/{ids[other]}/{suffix}"
            problem(getattr(caller, method)(path), 404)
        listed = caller.get(f"/v1/tenants/{own}/endpoints").get_json()["data"]
        assert [endpoint["id"] for endpoint in listed] == [ids[own]]
    # The admin sees both, each under its own tenant only.
    assert admin.get(f"/v1/tenants/acme/endpoints/{ids['acme']}").status_code == 200
    problem(admin.get(f"/v1/tenants/acme/endpoints/{ids['globex']}"), 404)


def test_scopes(as_tenant: Callable[..., Caller], tenant: Tenant, receiver: str) -> None:
    reader = as_tenant("endpoints:read")
    assert reader.get(ENDPOINTS).status_code == 200
    problem(reader.post(ENDPOINTS, json={"url": receiver}), 403)
    problem(reader.post(ENDPOINTS, json={"nonsense": True}), 403)
    events_only = as_tenant("events:read", "events:write")
    problem(events_only.get(ENDPOINTS), 403)
    writer = as_tenant("endpoints:write")
    assert writer.post(ENDPOINTS, json={"url": receiver}).status_code == 201
    problem(writer.get(ENDPOINTS), 403)


def test_list_pages_through_endpoints(admin: Caller, tenant: Tenant, receiver: str) -> None:
    created = [
        admin.post(ENDPOINTS, json={"url": receiver, "verify": False}).get_json()["id"]
        for _ in range(5)
    ]
    first = admin.get(f"{ENDPOINTS}?limit=2").get_json()
    second = admin.get(f"{ENDPOINTS}?limit=2&cursor={first['next_cursor']}").get_json()
    third = admin.get(f"{ENDPOINTS}?limit=2&cursor={second['next_cursor']}").get_json()
    listed = [e["id"] for page in (first, second, third) for e in page["data"]]
    assert listed == sorted(created, reverse=True) and third["next_cursor"] is None
