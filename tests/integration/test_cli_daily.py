"""The daily work from the command line: endpoints, events, deliveries and their attempts,
as tables by default and JSON with ``--json``, through the functions the API calls."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from tests.integration.history_fixtures import make_attempt, make_delivery
from webhooks.admin.tokens import SCOPES
from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef
from webhooks.core import clock
from webhooks.core.clock import rfc3339
from webhooks.core.db import new_session
from webhooks.models import Endpoint, Tenant
from webhooks.ops.cli import main


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[DeliveryRef]:
    """What was published (no worker runs here: the deliveries stay pending)."""
    sent: list[DeliveryRef] = []
    monkeypatch.setattr(broker, "publish", lambda refs, **_: sent.extend(refs) or len(refs))
    return sent


def _ok(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _json(*args: str) -> Any:
    return json.loads(_ok(*args, "--json"))


def test_endpoints_events_and_deliveries(
    clean_db: None, receiver: HTTPServer, published: list[DeliveryRef]
) -> None:
    receiver.expect_request("/hooks", method="POST").respond_with_data("ok")
    _ok("tenants", "create", "acme")
    url = receiver.url_for("/hooks")
    created = _json(
        "endpoints", "create", "acme", url, "--event-type", "order.*", "--description", "shop",
        "--secret", "S3cret!-long", "--header", "X-Env: test", "--retry-schedule", "0,60",
    )  # fmt: skip
    assert created["url"] == url and created["event_types"] == ["order.*"]
    assert created["headers"] == {"X-Env": "test"} and created["retry_schedule"] == [0, 60]
    assert "secret" not in created and created["previous_secret_expires_at"] is None
    endpoint_id = created["id"]
    # The verification PING reached the receiver, signed with the secret given.
    request = receiver.log[-1][0]
    Webhook(b"S3cret!-long").verify(request.get_data(), dict(request.headers))

    table = _ok("endpoints", "list", "acme").splitlines()
    assert table[0].split() == ["id", "url", "enabled", "event_types", "description"]
    assert table[1].split() == [endpoint_id, url, "true", '["order.*"]', "shop"]
    [listed] = [
        json.loads(line) for line in _ok("endpoints", "list", "acme", "--json").splitlines()
    ]
    assert listed == created | {"updated_at": listed["updated_at"]}
    assert "description                 shop" in _ok("endpoints", "show", endpoint_id)

    updated = _json("endpoints", "update", endpoint_id, "--description", "the shop", "--disabled")
    assert (updated["description"], updated["enabled"]) == ("the shop", False)
    _ok("endpoints", "update", endpoint_id, "--enabled")
    ping = _json("endpoints", "ping", endpoint_id)
    assert ping["delivery_id"] is None and ping["response"]["status"] == 200

    event_id = _ok("send", "acme", "order.created", '{"n": 1}').strip()
    assert [ref.endpoint_id for ref in published] == [endpoint_id]
    events = _ok("events", "list", "acme").splitlines()
    assert events[0].split() == ["id", "type", "timestamp", "deliveries", "idempotency_key"]
    assert events[1].split()[:2] == [event_id, "order.created"] and events[1].split()[3] == "1"
    event = _json("events", "show", event_id)
    assert event["data"] == {"n": 1}
    [delivery] = event["deliveries"]
    assert (delivery["endpoint_id"], delivery["status"]) == (endpoint_id, "pending")

    listed_deliveries = _ok("deliveries", "list", "acme", "--status", "pending", "--json")
    assert [json.loads(line)["id"] for line in listed_deliveries.splitlines()] == [delivery["id"]]
    assert _ok("deliveries", "list", "acme", "--status", "failed") == "(none)\n"
    assert _json("deliveries", "show", delivery["id"]) == delivery
    assert _ok("deliveries", "attempts", delivery["id"]) == "(none)\n"

    assert _ok("endpoints", "delete", endpoint_id) == f"endpoint {endpoint_id} deleted\n"
    with new_session() as session:
        assert session.get(Endpoint, endpoint_id) is None


def test_a_failed_ping_is_shown_and_attempts_are_a_table(
    session: Session, tenant: Tenant, receiver: HTTPServer
) -> None:
    receiver.expect_request("/flaky", method="POST").respond_with_data("no", status=503)
    endpoint = _json("endpoints", "create", "acme", receiver.url_for("/flaky"), "--no-verify")
    ping = _json("endpoints", "ping", endpoint["id"])
    assert ping["response"] == {"status": 503, "headers": ping["response"]["headers"], "body": "no"}

    row = session.get_one(Endpoint, endpoint["id"])
    delivery = make_delivery(session, row, status="retrying")
    now = clock.now()
    make_attempt(session, row, at=now, status=500, duration_ms=12, delivery=delivery)
    make_attempt(
        session, row, at=now, status=None, error="timeout", duration_ms=10_000,
        delivery=delivery, number=2,
    )  # fmt: skip
    session.commit()
    lines = _ok("deliveries", "attempts", delivery.id).splitlines()
    assert lines[0].split() == ["attempt", "started_at", "duration_ms", "status", "error", "id"]
    assert [line.split()[:5] for line in lines[1:]] == [
        ["2", rfc3339(now), "10000", "-", "timeout"],
        ["1", rfc3339(now), "12", "500", "-"],
    ]
    [newest, _] = [
        json.loads(line)
        for line in _ok("deliveries", "attempts", delivery.id, "--json").splitlines()
    ]
    assert newest["error"] == "timeout" and newest["request"]["url"] == receiver.url_for("/flaky")


def test_errors_are_one_line_and_help_names_the_scopes(clean_db: None) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["endpoints", "show", "ep_nope"])
    assert (missing.exit_code, missing.stderr) == (1, "Error: no endpoint 'ep_nope'\n")
    unknown = runner.invoke(main, ["endpoints", "list", "nope"])
    assert (unknown.exit_code, unknown.stderr) == (1, "Error: no tenant 'nope'\n")
    runner.invoke(main, ["tenants", "create", "acme"])
    refused = runner.invoke(main, ["endpoints", "create", "acme", "ftp://x.example/"])
    assert refused.exit_code == 1 and refused.stderr.startswith("Error: URL must use")
    bad = runner.invoke(
        main, ["endpoints", "create", "acme", "https://x.example/", "--header", "X"]
    )
    assert bad.exit_code == 1 and "must be NAME:VALUE" in bad.stderr
    for command in ([], ["tokens", "create"]):
        helped = runner.invoke(main, [*command, "--help"])
        assert all(scope in helped.stdout for scope in SCOPES)
