"""Logs: JSON lines with the extra fields when ``WEBHOOKS_LOG_FORMAT=json``, and no secret,
signature or API key, neither from a real delivery nor if one ever reached a record."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.e2e.broker import environment, exclusive_redis_db
from webhooks.admin.tenants import create_tenant
from webhooks.core.config import get_settings
from webhooks.core.logs import configure_logging
from webhooks.core.redaction import REDACTED
from webhooks.ingest.enqueue import ingest
from webhooks.models import Delivery, Endpoint
from workers.tasks import deliver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_KEY = "sk_live_do-not-log-me-4242"


class Captured(io.StringIO):
    def lines(self) -> list[dict[str, object]]:
        """Every line written so far, each one JSON object (else this fails)."""
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]


@pytest.fixture
def json_logs() -> Iterator[Captured]:
    """The process's logging in JSON mode, into a buffer, for the test."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    captured = Captured()
    configure_logging(dataclasses.replace(get_settings(), log_format="json"), stream=captured)
    yield captured
    for handler in list(root.handlers):
        if handler not in saved[0]:
            root.removeHandler(handler)
    root.setLevel(saved[1])


def test_json_lines_carry_the_extra_fields(json_logs: Captured) -> None:
    logging.getLogger("webhooks.test").info(
        "attempt %d", 1,
        extra={"event_id": "evt_1", "delivery_id": "dlv_1", "endpoint_id": "ep_1",
               "status": 200, "duration_ms": 12, "error": None},
    )  # fmt: skip
    [line] = json_logs.lines()
    assert line["message"] == "attempt 1"
    assert line["level"] == "INFO" and line["logger"] == "webhooks.test"
    assert {k: line[k] for k in ("event_id", "delivery_id", "endpoint_id", "status")} == {
        "event_id": "evt_1", "delivery_id": "dlv_1", "endpoint_id": "ep_1", "status": 200,
    }  # fmt: skip
    assert line["duration_ms"] == 12 and line["error"] is None
    assert str(line["time"]).endswith("Z")


def test_secrets_that_reach_a_record_are_masked(json_logs: Captured) -> None:
    log = logging.getLogger("webhooks.test")
    signature = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
    log.warning("headers %s", {"webhook-signature": signature, "X-Api-Key": API_KEY})
    log.warning("signed with %s", SECRET, extra={"api_key": API_KEY, "token_id": "tok_1"})
    try:
        raise ValueError(f"Authorization: Bearer {API_KEY}")
    except ValueError:
        log.exception("failed")
    output = json.dumps(json_logs.lines())
    for secret in (SECRET, API_KEY, "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN"):
        assert secret not in output
    assert REDACTED in output and "tok_1" in output  # ids are not secrets


def test_a_real_attempt_logs_no_secret(
    session: Session, httpserver: HTTPServer, json_logs: Captured
) -> None:
    tenant = create_tenant(session, "acme")
    endpoint = Endpoint(
        tenant_id=tenant.id, url=httpserver.url_for("/hook"), secret=SECRET,
        signature_header="X-Payload-Signature", api_key_header="X-Api-Key", api_key=API_KEY,
    )  # fmt: skip
    session.add(endpoint)
    session.commit()
    httpserver.expect_request("/hook").respond_with_data("ok")
    with (
        exclusive_redis_db(os.environ["WEBHOOKS_TEST_REDIS_URL"]) as url,
        environment(WEBHOOKS_BROKER_URL=url),
    ):
        ingest(session, tenant=tenant, event_type="booking.created", data={"x": 1})
        session.commit()
        delivery_id = session.scalars(select(Delivery.id)).one()
        deliver(delivery_id)
    [request, _response] = httpserver.log[0]
    signature = request.headers["webhook-signature"].split(",", 1)[1]
    lines = json_logs.lines()
    attempt = next(line for line in lines if line["logger"] == "webhooks.delivery")
    assert delivery_id in json.dumps(attempt) and endpoint.id in json.dumps(attempt)
    output = json.dumps(lines)
    for secret in (SECRET, SECRET.removeprefix("whsec_"), API_KEY, signature,
                   request.headers["X-Payload-Signature"]):  # fmt: skip
        assert secret not in output
