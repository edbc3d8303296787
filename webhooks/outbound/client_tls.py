"""Mutual TLS: the client certificate an endpoint presents to receivers that ask for one.

An endpoint's ``client_certificate`` is a PEM chain (leaf first) and the leaf's private key.
It is checked when saved (:func:`validate`: both parse, the key is the certificate's, the
certificate has not expired), stored encrypted, and loaded into an ``ssl.SSLContext`` of its
own (:func:`ssl_context`). TLS sends a client certificate only when the server asks for one
in its handshake, so a receiver that does not ask never sees it.

The transport keeps one connection pool per endpoint and certificate
(:attr:`ClientCertificate.pool_key`), never shared with another endpoint: a kept-alive
connection that presented endpoint A's certificate is never reused for endpoint B's request,
even to the same host.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from urllib3.util.ssl_ import create_urllib3_context

from webhooks.core.errors import InvalidInput

MAX_PEM = 64 * 1024


@dataclass(frozen=True)
class ClientCertificate:
    """An endpoint's certificate chain and key, ready for :func:`ssl_context`."""

    #: The endpoint it belongs to: part of the pool key, so pools are never shared.
    owner: str
    cert: str
    key: str

    @property
    def pool_key(self) -> tuple[str, str]:
        """The endpoint and a digest of chain and key: a replaced certificate gets a new pool."""
        digest = hashlib.sha256(f"{self.cert}\0{self.key}".encode()).hexdigest()
        return self.owner, digest


def of(owner: str, stored: Mapping[str, Any] | None) -> ClientCertificate | None:
    """The stored ``client_certificate`` of endpoint ``owner``, or None."""
    if stored is None:
        return None
    return ClientCertificate(owner=owner, cert=stored["cert"], key=stored["key"])


def validate(value: Mapping[str, Any], *, at: datetime) -> dict[str, str]:
    """``{"cert", "key"}`` to store: PEM that parses, a key that matches, not expired at ``at``.

    :raises InvalidInput: naming ``client_certificate.cert`` or ``client_certificate.key``.
    """
    extra = set(value) - {"cert", "key"}
    if extra:
        name = sorted(extra)[0]
        raise InvalidInput(
            f"client_certificate has no field {name}", field=f"client_certificate.{name}"
        )
    cert_pem = _pem(value.get("cert"), "cert")
    key_pem = _pem(value.get("key"), "key")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        raise InvalidInput(
            "client_certificate.cert must be PEM certificates (-----BEGIN CERTIFICATE-----)",
            field="client_certificate.cert",
        ) from None
    try:
        key = load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidInput(
            "client_certificate.key must be an unencrypted PEM private key",
            field="client_certificate.key",
        ) from None
    leaf = chain[0]
    if _public(key.public_key()) != _public(leaf.public_key()):
        raise InvalidInput(
            "client_certificate.key is not the key of the (first) certificate",
            field="client_certificate.key",
        )
    if leaf.not_valid_after_utc <= at:
        raise InvalidInput(
            f"the client certificate expired at {leaf.not_valid_after_utc.isoformat()}",
            field="client_certificate.cert",
        )
    return {"cert": cert_pem, "key": key_pem}


def expires_at(stored: Mapping[str, Any]) -> datetime:
    """When the stored chain's leaf certificate expires (shown beside the certificate)."""
    return x509.load_pem_x509_certificates(stored["cert"].encode())[0].not_valid_after_utc


def public_view(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The certificate chain and its expiry, never the key: what responses may show."""
    if stored is None:
        return None
    return {"cert": stored["cert"], "expires_at": expires_at(stored)}


def _pem(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"client_certificate.{name} is required (PEM text)", field=f"client_certificate.{name}"
        )
    if len(value) > MAX_PEM:
        raise InvalidInput(
            f"client_certificate.{name} must be at most {MAX_PEM} characters",
            field=f"client_certificate.{name}",
        )
    return value


def _public(key: Any) -> bytes:
    data: bytes = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return data


def ssl_context(certificate: ClientCertificate) -> ssl.SSLContext:
    """A client context (urllib3's defaults: verification on) holding ``certificate``.

    ``ssl`` loads a certificate and key only from files, so they are written to a file
    readable by this user alone, loaded, and the file is removed at once.
    """
    context = create_urllib3_context()
    handle, path = tempfile.mkstemp(prefix="webhooks-client-", suffix=".pem")
    try:
        with os.fdopen(handle, "w") as pem:
            pem.write(certificate.key.rstrip() + "\n" + certificate.cert)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context
