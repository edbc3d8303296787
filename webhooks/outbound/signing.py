"""Signing outgoing requests so that receivers can trust them.

Every call carries the `Standard Webhooks`_ trio of headers: ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature``. The signature covers the id and the timestamp
as well as the body, so a receiver that checks the timestamp's age and dedupes on the id is safe
from both forgery and replay. Receivers need no code from us: the ``standardwebhooks`` package
(and its ports to other languages) verifies these headers.

An endpoint with ``"signing": "ed25519"`` gets the standard's asymmetric scheme instead: ``v1a``
signatures made with an ed25519 private key (``whsk_...``) that never leaves the dispatcher,
verified by the receiver with the public key (``whpk_...``) alone, so no shared secret can leak
from the receiver's side.

Some receivers predate that standard and expect a single hex HMAC of the body in a header of
their choosing (Umbrella Faces' ``X-FacesWebhookSignature``, Avionté's ``X-Payload-Signature``);
:func:`hex_signature` computes that one.

Everything here is a pure function of its arguments but one: the loaded form of recent
ed25519 private keys is remembered (:func:`_signing_key`), since loading a key costs as much as
a signature. The worker keeps decrypted secrets for a few minutes to skip decryption on every
attempt (:data:`webhooks.delivery.job.SECRET_CACHE_SECONDS`).

.. _Standard Webhooks: https://www.standardwebhooks.com/
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from secrets import token_bytes
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

#: The prefix that marks a secret whose key is the base64 text after it.
SECRET_PREFIX = "whsec_"  # noqa: S105 (a marker, not a secret)

#: The ``signing`` values of an endpoint: Standard Webhooks ``v1`` and ``v1a``.
HMAC = "hmac"
ED25519 = "ed25519"
SCHEMES = (HMAC, ED25519)

#: The prefixes of an ed25519 private (signing) and public (verifying) key, as the standard
#: serialises them: the prefix, then standard base64 of the raw key bytes.
PRIVATE_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"

#: Raw sizes of an ed25519 seed and public key. A ``whsk_`` key is the 64-byte libsodium form
#: (seed then public key) when we generate it; a bare 32-byte seed is accepted too.
ED25519_SEED_BYTES = 32
ED25519_KEY_BYTES = 64

#: Random bytes in a generated secret: 192 bits, the size the Standard Webhooks libraries use.
SECRET_BYTES = 24


def generate_secret() -> str:
    """Return a new random signing secret, ``whsec_`` followed by base64 of 24 random bytes.

    The prefix tells receivers (and :func:`secret_key`) that the key is the decoded base64
    part, which is how every Standard Webhooks library reads a secret.
    """
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """Return the HMAC key of a secret.

    For a ``whsec_`` secret the key is the base64-decoded part after the prefix; any other
    secret, such as one a receiver chose and typed in, is used as its UTF-8 bytes.

    The base64 part is decoded exactly as the ``standardwebhooks`` package decodes it
    (missing padding tolerated, stray characters ignored) so that whatever a receiver's
    library derives from the same secret is the key we sign with.
    """
    if secret.startswith(SECRET_PREFIX):
        # Extra padding is ignored by b64decode; missing padding would be an error.
        return base64.b64decode(secret[len(SECRET_PREFIX) :] + "==")
    return secret.encode("utf-8")


def sign(message_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """Return the ``webhook-signature`` header value for one request.

    Each secret gives one ``v1,<base64 HMAC-SHA256>`` of ``"{message_id}.{timestamp}.{body}"``;
    they are joined by single spaces in the order given, which callers keep newest first.
    During a rotation the old and new secrets both sign, so a receiver still holding the old
    one keeps verifying until it switches.

    The body is fed to the HMAC after the short prefix rather than concatenated with it, so a
    large body is never copied.

    :raises ValueError: if ``secrets`` is empty; an unsigned request is never intended.
    """
    if not secrets:
        raise ValueError("at least one secret is needed to sign a request")
    prefix = f"{message_id}.{timestamp}.".encode()
    signatures = []
    for secret in secrets:
        mac = hmac.new(secret_key(secret), prefix, hashlib.sha256)
        mac.update(body)
        signatures.append("v1," + base64.b64encode(mac.digest()).decode("ascii"))
    return " ".join(signatures)


def hex_signature(secret: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``body`` for an endpoint's ``signature_header``.

    The key is the *whole* secret's UTF-8 bytes, ``whsec_`` prefix included, because that is
    what the receivers using such headers compute: they treat the secret as an opaque string.
    """
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_headers(
    message_id: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[str],
    *,
    private_keys: Sequence[str] = (),
) -> dict[str, str]:
    """Return the Standard Webhooks headers for one request.

    The signature is ``v1a`` (:func:`sign_ed25519`) when ``private_keys`` are given, an
    ``ed25519`` endpoint's, else ``v1`` with ``secrets`` (:func:`sign`).

    The names are lowercase as in the specification (HTTP header names are case-insensitive,
    and receivers look them up so). ``message_id`` is the event id, the same on every retry
    so that receivers can dedupe; ``timestamp`` is the unix time of this attempt.
    """
    if private_keys:
        signature = sign_ed25519(message_id, timestamp, body, private_keys)
    else:
        signature = sign(message_id, timestamp, body, secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def active_secrets(
    current: str | None, previous: str | None, previous_expires_at: datetime | None, at: datetime
) -> list[str]:
    """The secrets (or ed25519 keys) that sign at ``at``, newest first: the current one, and
    during a rotation the previous one until it expires (so receivers can switch keys without
    losing events). Empty when there is no current one (an ``hmac`` endpoint's keys)."""
    if current is None:
        return []
    if previous and previous_expires_at is not None and previous_expires_at > at:
        return [current, previous]
    return [current]


class Rotating(Protocol):
    """What rotates on an endpoint: the HMAC secret and the ed25519 key, each with the value it
    replaced and when that stops signing (the ORM endpoint and the engine's copy of one)."""

    @property
    def secret(self) -> str: ...
    @property
    def previous_secret(self) -> str | None: ...
    @property
    def previous_secret_expires_at(self) -> datetime | None: ...
    @property
    def signing_key(self) -> str | None: ...
    @property
    def previous_signing_key(self) -> str | None: ...
    @property
    def previous_signing_key_expires_at(self) -> datetime | None: ...


def hmac_secrets(endpoint: Rotating, at: datetime) -> list[str]:
    """The HMAC secrets that sign at ``at``, newest first (two during a rotation)."""
    return active_secrets(
        endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_expires_at, at
    )


def ed25519_keys(endpoint: Rotating, at: datetime) -> list[str]:
    """The ed25519 private keys that sign at ``at``, newest first; none on ``hmac`` endpoints."""
    return active_secrets(
        endpoint.signing_key,
        endpoint.previous_signing_key,
        endpoint.previous_signing_key_expires_at,
        at,
    )


def generate_private_key() -> str:
    """Return a new ed25519 private key, ``whsk_`` + base64 of seed and public key (64 bytes)."""
    key = Ed25519PrivateKey.generate()
    return PRIVATE_KEY_PREFIX + base64.b64encode(key.private_bytes_raw() + _public_raw(key)).decode(
        "ascii"
    )


def load_private_key(private_key: str) -> Ed25519PrivateKey:
    """The key of a ``whsk_`` string (64-byte seed-and-public-key form, or a 32-byte seed).

    :raises ValueError: if it is not a ``whsk_`` key of either size, or the public half of a
        64-byte key is not the seed's (a corrupted or spliced key would sign unverifiably).
    """
    if not private_key.startswith(PRIVATE_KEY_PREFIX):
        raise ValueError(f"an ed25519 private key starts with {PRIVATE_KEY_PREFIX}")
    try:
        raw = base64.b64decode(private_key[len(PRIVATE_KEY_PREFIX) :], validate=True)
    except ValueError:
        raise ValueError("an ed25519 private key is whsk_ followed by base64") from None
    if len(raw) not in (ED25519_SEED_BYTES, ED25519_KEY_BYTES):
        raise ValueError(
            f"an ed25519 private key is {ED25519_SEED_BYTES} or {ED25519_KEY_BYTES} bytes,"
            f" not {len(raw)}"
        )
    key = Ed25519PrivateKey.from_private_bytes(raw[:ED25519_SEED_BYTES])
    if len(raw) == ED25519_KEY_BYTES and raw[ED25519_SEED_BYTES:] != _public_raw(key):
        raise ValueError("the public half of this ed25519 private key does not match its seed")
    return key


def public_key(private_key: str) -> str:
    """The ``whpk_`` public key that verifies what ``private_key`` signs."""
    raw = _public_raw(load_private_key(private_key))
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def _public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_ed25519(message_id: str, timestamp: int, body: bytes, private_keys: Sequence[str]) -> str:
    """The ``webhook-signature`` value with ``v1a`` signatures, one per key, newest first.

    ed25519 signs the whole message in one pass (it hashes it twice internally), so unlike
    :func:`sign` the signed text is assembled once and shared by the keys.

    :raises ValueError: if ``private_keys`` is empty or one of them is malformed.
    """
    if not private_keys:
        raise ValueError("at least one private key is needed to sign a request")
    message = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1a," + base64.b64encode(_signing_key(key).sign(message)).decode("ascii")
        for key in private_keys
    )


@lru_cache(maxsize=4096)
def _signing_key(private_key: str) -> Ed25519PrivateKey:
    """:func:`load_private_key`, remembered for the endpoints a worker is delivering to."""
    return load_private_key(private_key)
