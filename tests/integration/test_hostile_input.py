"""A tenant with a token and a receiver of its own, trying to hurt the service (the API here,
on the real database; the worker's side is in ``tests/faults/test_hostile_receivers.py``).

Each test reproduces one finding of the security review and checks the answer is a 4xx
problem+json (or, for the receiver's bytes, an ordinary recorded attempt).
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.api_client import Caller, problem
from tests.faults.harness import Receiver, answer, hostile_bytes
from tests.services import free_port
from webhooks import enqueue_event
from webhooks.core.errors import InvalidInput
from webhooks.core.redaction import REDACTED
from webhooks.delivery.engine import process
from webhooks.models import Delivery, Endpoint, Tenant
from webhooks.ops import metrics
from webhooks.outbound.http import default_transport

TENANT = "/v1/tenants/acme"
ENDPOINTS = f"{TENANT}/endpoints"


@pytest.fixture
def raw_receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _create(admin: Caller, **fields: Any) -> dict[str, Any]:
    response = admin.post(ENDPOINTS, json=fields)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


# --- 2. receiver-controlled bytes ------------------------------------------------------------


def test_a_receiver_answering_with_nul_and_invalid_utf8_can_be_verified_and_pinged(
    admin: Caller, tenant: Tenant, raw_receiver: Receiver
) -> None:
    endpoint = _create(admin, url=raw_receiver.on("/hostile", hostile_bytes))  # verify: a PING
    ping = admin.post(f"{ENDPOINTS}/{endpoint['id']}/ping")
    assert ping.status_code == 200, ping.get_json()
    response = ping.get_json()["response"]
    assert response["status"] == 200
    assert response["headers"]["X-Bad"] == "a\ufffdb"
    assert len(response["headers"]["X-Huge"]) <= 8 * 1024
    assert "\x00" not in response["body"]
    history = admin.get(f"{ENDPOINTS}/{endpoint['id']}/attempts").get_json()["data"]
    assert len(history) == 2  # the verification PING and this one


# --- 1. schema validation budget -------------------------------------------------------------


def _event_type(admin: Caller, name: str, schema: dict[str, Any]) -> None:
    response = admin.post(f"{TENANT}/event-types", json={"name": name, "schema": schema})
    assert response.status_code == 201, response.get_json()


def test_a_catastrophic_pattern_is_a_quick_422(admin: Caller, tenant: Tenant) -> None:
    schema = {"properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}
    _event_type(admin, "redos.test", schema)
    hostile = {"type": "redos.test", "data": {"code": "a" * 28 + "!"}}
    body = problem(admin.post(f"{TENANT}/events", json=hostile), 422)
    assert body["errors"][0]["field"] == "data.code"
    with pytest.raises(InvalidInput):
        enqueue_event("redos.test", {"code": "a" * 40 + "!"}, tenant="acme")


def test_unique_items_over_thousands_of_objects_is_answered(admin: Caller, tenant: Tenant) -> None:
    _event_type(admin, "unique.test", {"properties": {"rows": {"uniqueItems": True}}})
    rows = [{"n": n, "tag": "row"} for n in range(4000)]
    duplicated = {"type": "unique.test", "data": {"rows": [*rows, {"tag": "row", "n": 1}]}}
    problem(admin.post(f"{TENANT}/events", json=duplicated), 422)
    distinct = admin.post(f"{TENANT}/events", json={"type": "unique.test", "data": {"rows": rows}})
    assert distinct.status_code == 202, distinct.get_json()


def test_a_pattern_that_needs_backtracking_is_refused_when_saved(
    admin: Caller, tenant: Tenant
) -> None:
    schema = {"properties": {"code": {"pattern": "^(?!admin)\\w+$"}}}
    body = problem(
        admin.post(f"{TENANT}/event-types", json={"name": "look.ahead", "schema": schema}), 422
    )
    assert body["errors"][0]["field"] == "schema"
    assert "/properties/code/pattern" in body["detail"] and "lookaround" in body["detail"]


def test_multiple_of_with_a_400_digit_number_is_answered(admin: Caller, tenant: Tenant) -> None:
    _event_type(admin, "big.number", {"properties": {"n": {"multipleOf": 0.3}}})
    huge = "1" + "0" * 400
    raw = '{"type": "big.number", "data": {"n": ' + huge + "}}"
    response = admin.post(f"{TENANT}/events", data=raw, content_type="application/json")
    problem(response, 422)


# --- 4. out-of-range times -------------------------------------------------------------------


def test_times_past_the_year_9999_are_422_not_500(
    admin: Caller, tenant: Tenant, receiver: Any
) -> None:
    endpoint = _create(admin, url=receiver.url_for("/hook"), verify=False)
    far = "9999-12-31T23:59:59Z"
    for path in (
        f"{TENANT}/deliveries?until={far}",
        f"{ENDPOINTS}/{endpoint['id']}/attempts?until={far}",
        f"{TENANT}/deliveries?since={far}",
    ):
        body = problem(admin.get(path), 422)
        assert body["errors"][0]["message"].startswith("Must be before")
    recover = admin.post(
        f"{ENDPOINTS}/{endpoint['id']}/recover",
        json={"since": "2026-01-01T00:00:00Z", "until": far},
    )
    problem(recover, 422)
    late = admin.get(f"{TENANT}/deliveries?until=9998-12-31T23:59:59Z")
    assert late.status_code == 200


# --- 5 and 8. the SSRF policy ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
    ],
)
def test_ipv6_forms_leaving_the_machine_are_not_allowed_by_the_ipv4_allowlist(
    admin: Caller, tenant: Tenant, url: str
) -> None:
    # The test settings allow 127.0.0.0/8, as the README's example does.
    body = problem(admin.post(ENDPOINTS, json={"url": url, "verify": False}), 422)
    assert body["errors"][0]["field"] == "url"


def test_a_refusal_names_the_class_of_address_not_the_address(
    admin: Caller, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def internal_dns(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "billing.internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", 80))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", internal_dns)
    url = "http://billing.internal.example/hook"
    body = problem(admin.post(ENDPOINTS, json={"url": url, "verify": False}), 422)
    assert "a private address" in body["detail"]
    assert "10.20.30.40" not in json.dumps(body)


# --- 6. credential-like custom headers and URL tokens ----------------------------------------


def test_credential_headers_are_encrypted_at_rest_and_masked_in_responses_and_history(
    admin: Caller, tenant: Tenant, session: Session, raw_receiver: Receiver
) -> None:
    url = raw_receiver.on("/in?token=url-secret-55", answer())
    headers = {"Authorization": "Bearer s3cr3t-abc", "X-Auth-Token": "tok-xyz", "X-Tenant": "t1"}
    endpoint = _create(admin, url=url, headers=headers)
    shown = admin.get(f"{ENDPOINTS}/{endpoint['id']}").get_json()
    assert shown["headers"] == {
        "Authorization": REDACTED,
        "X-Auth-Token": REDACTED,
        "X-Tenant": "t1",
    }
    stored = session.execute(
        text("SELECT headers::text FROM endpoints WHERE id = :id"), {"id": endpoint["id"]}
    ).scalar_one()
    assert "s3cr3t-abc" not in stored and "tok-xyz" not in stored and "t1" in stored
    sent = raw_receiver.received()[-1].headers
    assert (sent["authorization"], sent["x-auth-token"]) == ("Bearer s3cr3t-abc", "tok-xyz")

    # What a client read can be sent back: the masked values keep what is stored.
    changed = {**shown["headers"], "X-Tenant": "t2"}
    patched = admin.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"headers": changed})
    assert patched.status_code == 200, patched.get_json()
    attempt = admin.post(f"{ENDPOINTS}/{endpoint['id']}/ping").get_json()
    sent = raw_receiver.received()[-1].headers
    assert (sent["authorization"], sent["x-tenant"]) == ("Bearer s3cr3t-abc", "t2")
    assert attempt["request"]["headers"]["Authorization"] == REDACTED
    assert attempt["request"]["headers"]["X-Auth-Token"] == REDACTED
    assert attempt["request"]["url"].endswith(f"?token={REDACTED}")
    session.expire_all()
    assert session.get(Endpoint, endpoint["id"]).headers["X-Auth-Token"] == "tok-xyz"  # type: ignore[union-attr]


# --- 9. the smaller findings -----------------------------------------------------------------


def test_ping_is_a_reserved_event_type(admin: Caller, tenant: Tenant) -> None:
    problem(admin.post(f"{TENANT}/events", json={"type": "ping", "data": {}}), 422)
    problem(admin.post(f"{TENANT}/event-types", json={"name": "ping"}), 422)
    with pytest.raises(InvalidInput, match="reserved"):
        enqueue_event("ping", {}, tenant="acme")


def test_tenant_uids_are_unique_regardless_of_case(admin: Caller, tenant: Tenant) -> None:
    body = problem(admin.post("/v1/tenants", json={"uid": "ACME"}), 409)
    assert "regardless of case" in body["detail"]


@pytest.mark.parametrize("content_type", ["text/json", "application/vnd.acme+json"])
def test_json_templates_of_every_json_content_type_escape_what_producers_send(
    admin: Caller, tenant: Tenant, session: Session, raw_receiver: Receiver, content_type: str
) -> None:
    url = raw_receiver.on("/templated", answer())
    template = '{"name": "[data.name]"}'
    _create(admin, url=url, content_type=content_type, template=template, verify=False)
    hostile = 'x", "admin": true, "y": "'
    sent = admin.post(f"{TENANT}/events", json={"type": "user.updated", "data": {"name": hostile}})
    assert sent.status_code == 202, sent.get_json()
    [delivery_id] = session.scalars(select(Delivery.id)).all()
    process(delivery_id, default_transport(), rng=random.Random(1))
    [request] = raw_receiver.received("/templated")
    assert json.loads(request.body) == {"name": hostile}


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def test_the_worker_metrics_exporter_listens_on_loopback_only() -> None:
    port = free_port()
    metrics.start_exporter(port)
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex
