"""Verifying ``v1a`` (ed25519) signatures as a receiver does, with ``cryptography``'s own
verifier and nothing of ours but the ``whpk_`` public key the API shows."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def verified(public_key: str, headers: Mapping[str, str], body: bytes) -> int:
    """How many of the ``v1a`` signatures in ``headers`` verify with ``public_key``.

    Every signature must be a ``v1a`` one: an ed25519 endpoint sends no HMAC beside them.
    """
    assert public_key.startswith("whpk_"), public_key
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    lowered = {name.lower(): value for name, value in headers.items()}
    signed = f"{lowered['webhook-id']}.{lowered['webhook-timestamp']}.".encode() + body
    good = 0
    for entry in lowered["webhook-signature"].split(" "):
        version, _, signature = entry.partition(",")
        assert version == "v1a", entry
        try:
            key.verify(base64.b64decode(signature), signed)
        except InvalidSignature:
            continue
        good += 1
    return good
