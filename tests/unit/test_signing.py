"""Signatures, checked against the independent ``standardwebhooks`` package and fixed vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhooks.outbound.signing import (
    generate_secret,
    hex_signature,
    secret_key,
    sign,
    signature_headers,
)

BODY = b'{"id":"evt_1","type":"traveller.updated","data":{"name":"Zo\xc3\xab"}}'


def test_spec_vector() -> None:
    # The example from the Standard Webhooks reference libraries' tests.
    signature = sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_plain_secret_vector() -> None:
    # printf 'msg_1.1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'S3cret!' -binary | base64
    assert sign("msg_1", 1700000000, b'{"a":1}', ["S3cret!"]) == (
        "v1,tkrcX4x/EClCmdaqpHa/ZlkKQ6lx5cwJDL/XMLZeY0Y="
    )


def test_hex_signature_vector() -> None:
    # printf '{"a":1}' | openssl dgst -sha256 -hmac 'S3cret!'
    assert hex_signature("S3cret!", b'{"a":1}') == (
        "03d7918c1e82f315654ceaae5ae4dbee36ac3f7d154321e95a0c2e38aa9d6995"
    )


@pytest.mark.parametrize("secret", ["S3cret!", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "ünï"])
def test_hex_signature_keys_with_the_whole_secret(secret: str) -> None:
    expected = hmac.new(secret.encode("utf-8"), BODY, hashlib.sha256).hexdigest()
    assert hex_signature(secret, BODY) == expected


def test_secret_key() -> None:
    raw = bytes(range(24))
    assert secret_key("whsec_" + base64.b64encode(raw).decode()) == raw
    assert secret_key("S3cret!") == b"S3cret!"
    assert secret_key("ünï") == "ünï".encode()
    # Unpadded base64 is read as standardwebhooks reads it.
    assert secret_key("whsec_YWI") == b"ab"


def test_generated_secret() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert generate_secret() != secret


def test_verifies_with_standardwebhooks_whsec_secret() -> None:
    secret = generate_secret()
    headers = signature_headers("evt_1", int(time.time()), BODY, [secret])
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "evt_1"
    Webhook(secret).verify(BODY, headers)


def test_verifies_with_standardwebhooks_plain_secret() -> None:
    # standardwebhooks base64-decodes every *str* secret, prefixed or not, so a receiver
    # holding a plain secret gives it the UTF-8 bytes (or "whsec_" + their base64).
    secret = "S3cret!"
    headers = signature_headers("evt_1", int(time.time()), BODY, [secret])
    Webhook(secret.encode("utf-8")).verify(BODY, headers)
    Webhook("whsec_" + base64.b64encode(secret.encode("utf-8")).decode()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)


def test_rotation_signs_with_every_secret_newest_first() -> None:
    new, old = generate_secret(), "S3cret!"
    timestamp = int(time.time())
    headers = signature_headers("evt_1", timestamp, BODY, [new, old])
    signatures = headers["webhook-signature"].split(" ")
    assert signatures == [
        sign("evt_1", timestamp, BODY, [new]),
        sign("evt_1", timestamp, BODY, [old]),
    ]
    Webhook(new).verify(BODY, headers)
    Webhook(old.encode()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_signature_covers_id_timestamp_and_body() -> None:
    secret = generate_secret()
    timestamp = int(time.time())
    headers = signature_headers("evt_1", timestamp, BODY, [secret])
    for tampered in (
        {**headers, "webhook-id": "evt_2"},
        {**headers, "webhook-timestamp": str(timestamp - 1)},
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(BODY, tampered)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)


def test_no_secret_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        sign("evt_1", 0, BODY, [])


def test_active_secrets_keep_the_previous_one_until_it_expires() -> None:
    from datetime import UTC, datetime, timedelta

    from webhooks.outbound.signing import active_secrets

    at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert active_secrets("new", "old", at + timedelta(seconds=1), at) == ["new", "old"]
    assert active_secrets("new", "old", at, at) == ["new"]
    assert active_secrets("new", None, at + timedelta(hours=1), at) == ["new"]
    assert active_secrets("new", "old", None, at) == ["new"]
