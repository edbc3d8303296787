"""Endpoints: where a tenant's events go, and how each request to them is shaped."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webhooks.core.clock import now
from webhooks.core.ids import new_id
from webhooks.models.base import Base, EncryptedHeaders, EncryptedJSON, EncryptedText
from webhooks.outbound import signing


class Endpoint(Base):
    __tablename__ = "endpoints"
    __table_args__ = (Index(None, "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ep"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    #: Exact types or ``prefix.*`` patterns; empty means every type.
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    #: Why the dispatcher disabled it on its own (410 Gone, failing for days); None otherwise.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(EncryptedText)
    #: The secret replaced by the last rotation, still signing until it expires.
    previous_secret: Mapped[str | None] = mapped_column(EncryptedText)
    previous_secret_expires_at: Mapped[datetime | None]
    #: ``hmac`` (Standard Webhooks ``v1``, keyed with ``secret``) or ``ed25519`` (``v1a``).
    signing: Mapped[str] = mapped_column(String(20), default="hmac", server_default="hmac")
    #: The ed25519 private key (``whsk_...``) of an ``ed25519`` endpoint; None for ``hmac``.
    signing_key: Mapped[str | None] = mapped_column(EncryptedText)
    #: The private key replaced by the last rotation, still signing until it expires.
    previous_signing_key: Mapped[str | None] = mapped_column(EncryptedText)
    previous_signing_key_expires_at: Mapped[datetime | None]
    signature_header: Mapped[str | None] = mapped_column(String(100))
    api_key_header: Mapped[str | None] = mapped_column(String(100))
    api_key: Mapped[str | None] = mapped_column(EncryptedText)
    #: How the dispatcher authenticates to the receiver (``basic``, ``bearer``, ``oauth2``),
    #: credentials included; see :mod:`webhooks.outbound.receiver_auth`.
    auth: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    #: ``{"cert", "key"}``: the PEM chain and key offered to receivers asking for mutual TLS.
    client_certificate: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    #: Custom headers; credential-like values are encrypted at rest.
    headers: Mapped[dict[str, Any]] = mapped_column(EncryptedHeaders, default=dict)
    content_type: Mapped[str] = mapped_column(String(200), default="application/json")
    template: Mapped[str | None] = mapped_column(Text)
    #: Delays in seconds before each retry; None means the default exponential schedule.
    retry_schedule: Mapped[list[Any] | None]
    timeout_seconds: Mapped[int] = mapped_column(default=10)
    #: Start of the current run of failed attempts (None once one succeeds).
    failing_since: Mapped[datetime | None]
    #: A condition on the envelope (webhooks.ingest.filters); None: every event of its types.
    filter: Mapped[dict[str, Any] | None]
    #: Most deliveries per second, across every worker (webhooks.delivery.rate_limit).
    rate_limit: Mapped[float | None]
    #: ``none``, or ``fifo``: one delivery in flight at a time, in event order.
    ordering: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    #: The next free send slot of a rate-limited endpoint.
    next_send_at: Mapped[datetime | None]
    #: FIFO: the lease of the delivery in flight (None or past: none is).
    busy_until: Mapped[datetime | None]
    #: The circuit breaker (webhooks.delivery.circuit): state, failures in a row, the end of
    #: the cool-down (or of the probe's lease), the current cool-down in seconds.
    circuit: Mapped[str] = mapped_column(String(16), default="closed", server_default="closed")
    circuit_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    circuit_until: Mapped[datetime | None]
    circuit_cooldown: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)

    @property
    def public_key(self) -> str | None:
        """The ``whpk_`` key receivers verify with (``ed25519`` endpoints only)."""
        return None if self.signing_key is None else signing.public_key(self.signing_key)
