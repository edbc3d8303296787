"""Signatures, checked against independent verifiers (the ``standardwebhooks`` package,
``cryptography``'s ed25519) and fixed vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.v1a import verified
from webhooks.outbound.signing import (
    generate_private_key,
    generate_secret,
    hex_signature,
    load_private_key,
    public_key,
    secret_key,
    sign,
    sign_ed25519,
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


# -- ed25519 (v1a), verified with cryptography's own verifier and the public key alone ------


def test_ed25519_signature_verifies_with_the_public_key() -> None:
    private = generate_private_key()
    raw = base64.b64decode(private.removeprefix("whsk_"), validate=True)
    assert private.startswith("whsk_") and len(raw) == 64
    headers = signature_headers("evt_1", int(time.time()), BODY, [], private_keys=[private])
    assert headers["webhook-signature"].startswith("v1a,")
    assert verified(public_key(private), headers, BODY) == 1
    assert verified(public_key(private), headers, BODY + b" ") == 0
    assert verified(public_key(generate_private_key()), headers, BODY) == 0


def test_ed25519_rotation_signs_with_both_keys_newest_first() -> None:
    new, old = generate_private_key(), generate_private_key()
    timestamp = int(time.time())
    headers = signature_headers("evt_1", timestamp, BODY, [], private_keys=[new, old])
    assert headers["webhook-signature"].split(" ") == [
        sign_ed25519("evt_1", timestamp, BODY, [new]),
        sign_ed25519("evt_1", timestamp, BODY, [old]),
    ]
    assert verified(public_key(new), headers, BODY) == 1
    assert verified(public_key(old), headers, BODY) == 1


def test_ed25519_vector_from_rfc_8032() -> None:
    # RFC 8032 §7.1 TEST 1: the empty message (our signed text is never empty, so the
    # signature is checked on the raw primitive through a 32-byte seed key).
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    private = "whsk_" + base64.b64encode(seed).decode()
    assert (
        public_key(private)
        == "whpk_"
        + base64.b64encode(
            bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        ).decode()
    )
    assert load_private_key(private).sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("whsec_" + base64.b64encode(bytes(32)).decode(), "starts with whsk_"),
        ("whsk_not base64!", "followed by base64"),
        ("whsk_" + base64.b64encode(bytes(16)).decode(), "32 or 64 bytes"),
        ("whsk_" + base64.b64encode(bytes(64)).decode(), "does not match its seed"),
    ],
)
def test_malformed_private_keys_are_refused(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_private_key(key)


def test_no_private_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one private key"):
        sign_ed25519("evt_1", 0, BODY, [])
