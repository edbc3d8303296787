"""What a receiver gets (contract §6), verified as a receiver would, and what history keeps."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from webhooks import __version__
from webhooks.history.recording import attempt_values, record_attempt
from webhooks.models import Endpoint
from webhooks.outbound.outcome import MAX_BODY_BYTES, Outcome
from webhooks.outbound.request import REDACTED, build_request, envelope

AT = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = envelope("evt_1", "traveller.updated", AT, {"uuid": "25b4", "name": "Zoë"})


def endpoint(**fields: Any) -> Endpoint:
    defaults: dict[str, Any] = {
        "id": "ep_1",
        "tenant_id": "ten_1",
        "url": "https://receiver.example/hook",
        "secret": WHSEC,
        "headers": {},
        "content_type": "application/json",
        "template": None,
        "signature_header": None,
        "api_key_header": None,
        "api_key": None,
        "previous_secret": None,
        "previous_secret_expires_at": None,
    }
    return Endpoint(**{**defaults, **fields})


def verify(request_headers: dict[str, str], body: bytes, secret: str | bytes) -> Any:
    """What a receiver using the ``standardwebhooks`` package does."""
    return Webhook(secret).verify(body, request_headers)


def test_envelope_body_is_compact_utf8_json() -> None:
    request = build_request(endpoint(), BODY, at=AT)
    assert (
        request.body
        == (
            '{"id":"evt_1","type":"traveller.updated","timestamp":"2026-11-22T10:00:00Z",'
            '"data":{"uuid":"25b4","name":"Zoë"}}'
        ).encode()
    )
    assert request.url == "https://receiver.example/hook"


def test_standard_webhooks_headers_verify() -> None:
    request = build_request(endpoint(), BODY, at=AT)
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == f"webhooks/{__version__}"
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == str(int(AT.timestamp()))
    # Verification checks the timestamp against the clock: sign "now" for it.
    now = datetime.now(UTC)
    fresh = build_request(endpoint(), BODY, at=now)
    assert verify(fresh.headers, fresh.body, WHSEC) == json.loads(fresh.body)


def test_plain_secret_is_keyed_by_its_utf8_bytes() -> None:
    secret = "S3cret!-not-base64"
    request = build_request(endpoint(secret=secret), BODY, at=datetime.now(UTC))
    # Webhook(str) would base64-decode the secret; a plain secret is its UTF-8 bytes.
    assert verify(request.headers, request.body, secret.encode()) is not None


def test_rotation_signs_with_both_secrets_newest_first() -> None:
    now = datetime.now(UTC)
    old = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    rotated = endpoint(previous_secret=old, previous_secret_expires_at=now + timedelta(hours=1))
    request = build_request(rotated, BODY, at=now)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert verify(request.headers, request.body, WHSEC) is not None
    assert verify(request.headers, request.body, old) is not None
    expired = endpoint(previous_secret=old, previous_secret_expires_at=now - timedelta(seconds=1))
    assert len(build_request(expired, BODY, at=now).headers["webhook-signature"].split()) == 1


def test_signature_header_is_hex_hmac_of_the_body_with_the_newest_secret() -> None:
    request = build_request(endpoint(signature_header="X-FacesWebhookSignature"), BODY, at=AT)
    expected = hmac.new(WHSEC.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-FacesWebhookSignature"] == expected


def test_custom_headers_api_key_and_content_type() -> None:
    request = build_request(
        endpoint(
            headers={"X-Tenant": "acme", "User-Agent": "theirs"},
            api_key_header="X-api-key",
            api_key="k-123",
            content_type="application/vnd.acme+json",
        ),
        BODY,
        at=AT,
    )
    assert request.headers["X-Tenant"] == "acme"
    assert request.headers["User-Agent"] == "theirs"
    assert request.headers["X-api-key"] == "k-123"
    assert request.headers["Content-Type"] == "application/vnd.acme+json"


def test_custom_headers_cannot_override_the_signature() -> None:
    request = build_request(endpoint(headers={"webhook-id": "forged"}), BODY, at=AT)
    assert request.headers["webhook-id"] == "evt_1"


def test_template_renders_and_is_what_is_signed() -> None:
    template = '{"text": "[type] for [data.name]", "raw": [data]}'
    request = build_request(endpoint(template=template), BODY, at=datetime.now(UTC))
    assert json.loads(request.body) == {
        "text": "traveller.updated for Zoë",
        "raw": {"uuid": "25b4", "name": "Zoë"},
    }
    assert verify(request.headers, request.body, WHSEC) is not None


def outcome(status: int | None = 200, body: bytes = b"ok", error: str | None = None) -> Outcome:
    headers = {"Content-Type": "text/plain"} if status is not None else {}
    return Outcome(status, headers, body, error, 12)


def test_history_redacts_signatures_and_api_key() -> None:
    target = endpoint(
        signature_header="X-Payload-Signature",
        api_key_header="X-api-key",
        api_key="k-123",
        headers={"X-Tenant": "acme"},
    )
    request = build_request(target, BODY, at=AT)
    attempt = record_attempt(
        Session(),
        attempt_values(
            endpoint=target,
            delivery_id="dlv_1",
            number=1,
            request=request,
            outcome=outcome(),
            started_at=AT,
        ),
    )
    kept = attempt.request_headers
    assert kept["webhook-signature"] == REDACTED
    assert kept["X-Payload-Signature"] == REDACTED
    assert kept["X-api-key"] == REDACTED
    assert kept["X-Tenant"] == "acme" and kept["webhook-id"] == "evt_1"
    assert "k-123" not in json.dumps(kept) and WHSEC not in json.dumps(kept)
    assert attempt.request_body == request.body.decode()
    assert (attempt.response_status, attempt.response_body, attempt.error) == (200, "ok", None)


@pytest.mark.parametrize("size", [MAX_BODY_BYTES - 1, MAX_BODY_BYTES, MAX_BODY_BYTES * 3])
def test_history_keeps_the_first_64_kib_of_a_response(size: int) -> None:
    request = build_request(endpoint(), BODY, at=AT)
    attempt = record_attempt(
        Session(),
        attempt_values(
            endpoint=endpoint(),
            delivery_id="dlv_1",
            number=1,
            request=request,
            outcome=outcome(500, b"x" * size),
            started_at=AT,
        ),
    )
    assert attempt.response_body == "x" * min(size, 64 * 1024)


def test_history_of_an_attempt_without_response() -> None:
    request = build_request(endpoint(), BODY, at=AT)
    attempt = record_attempt(
        Session(),
        attempt_values(
            endpoint=endpoint(),
            delivery_id="dlv_1",
            number=3,
            request=request,
            outcome=outcome(None, b"", "timeout"),
            started_at=AT,
        ),
    )
    assert attempt.response_status is None and attempt.response_headers is None
    assert attempt.response_body is None and attempt.error == "timeout" and attempt.attempt == 3
