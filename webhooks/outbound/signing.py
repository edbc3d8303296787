"""Signing outgoing requests so that receivers can trust them.

Every call carries the `Standard Webhooks`_ trio of headers: ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature``. The signature covers the id and the timestamp
as well as the body, so a receiver that checks the timestamp's age and dedupes on the id is safe
from both forgery and replay. Receivers need no code from us: the ``standardwebhooks`` package
(and its ports to other languages) verifies these headers.

Some receivers predate that standard and expect a single hex HMAC of the body in a header of
their choosing (Umbrella Faces' ``X-FacesWebhookSignature``, Avionté's ``X-Payload-Signature``);
:func:`hex_signature` computes that one.

Everything here is a pure function of its arguments, so nothing here keeps a secret. The
worker does: it keeps decrypted secrets for a few minutes to skip decryption on every attempt
(:data:`webhooks.delivery.job.SECRET_CACHE_SECONDS`).

.. _Standard Webhooks: https://www.standardwebhooks.com/
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from secrets import token_bytes

#: The prefix that marks a secret whose key is the base64 text after it.
SECRET_PREFIX = "whsec_"  # noqa: S105 (a marker, not a secret)

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
    message_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """Return the Standard Webhooks headers for one request.

    The names are lowercase as in the specification (HTTP header names are case-insensitive,
    and receivers look them up so). ``message_id`` is the event id, the same on every retry
    so that receivers can dedupe; ``timestamp`` is the unix time of this attempt.
    """
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(message_id, timestamp, body, secrets),
    }


def active_secrets(
    current: str, previous: str | None, previous_expires_at: datetime | None, at: datetime
) -> list[str]:
    """The secrets that sign at ``at``, newest first: the current one, and during a rotation
    the previous one until it expires (so receivers can switch keys without losing events)."""
    if previous and previous_expires_at is not None and previous_expires_at > at:
        return [current, previous]
    return [current]
