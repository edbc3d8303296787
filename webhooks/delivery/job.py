"""What one attempt needs: the claimed delivery, its event's body and its endpoint's settings.

:class:`EndpointConfig` is the single list of the endpoint columns an attempt reads: both
storage paths select exactly its fields (:data:`ENDPOINT_COLUMNS`), by name, so a column
added to the endpoints table reaches every attempt by adding one field here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.types import TypeEngine

from webhooks.broker.publishing import DeliveryRef
from webhooks.core import crypto
from webhooks.models import Endpoint, Event
from webhooks.models.base import EncryptedJSON, EncryptedText, load_json
from webhooks.outbound.request import envelope


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """What an attempt reads of an endpoint, with its secrets decrypted: the ORM's
    :class:`~webhooks.models.Endpoint` without the ORM (it is only read)."""

    id: str
    tenant_id: str
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    signature_header: str | None
    api_key_header: str | None
    api_key: str | None
    headers: dict[str, Any]
    content_type: str
    template: str | None
    retry_schedule: list[Any] | None
    timeout_seconds: int
    failing_since: datetime | None
    enabled: bool
    signing: str
    signing_key: str | None
    previous_signing_key: str | None
    previous_signing_key_expires_at: datetime | None
    #: Decrypted by the column's own type (:class:`~webhooks.models.base.EncryptedJSON`).
    auth: dict[str, Any] | None
    client_certificate: dict[str, Any] | None
    #: ``none`` or ``fifo`` (whose attempts release the next delivery as they finish).
    ordering: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, decrypt: bool = True) -> EndpointConfig:
        """From a row holding :data:`ENDPOINT_COLUMNS` as stored: secrets still encrypted.

        Driver values differ between the paths (a prepared statement's rows skip SQLAlchemy's
        type processing), so times are put in UTC and an absent ``headers`` made empty here.
        Without ``decrypt`` the secrets are left out (empty): enough to record an attempt
        that failed before anything could be sent.
        """
        values = {name: row[name] for name in ENDPOINT_COLUMNS}
        for name in _ENCRYPTED:
            values[name] = _decrypt(values[name]) if decrypt else None
        for name in _ENCRYPTED_JSON:
            plaintext = _decrypt(values[name]) if decrypt else None
            values[name] = None if plaintext is None else load_json(plaintext)
        values["secret"] = values["secret"] or ""
        for name in _TIMES:
            values[name] = utc(values[name])
        # Credential-like values are sealed at rest; opening opened ones changes nothing.
        values["headers"] = crypto.open_headers(values["headers"] or {}) if decrypt else {}
        return cls(**values)


_TIMES = ("previous_secret_expires_at", "previous_signing_key_expires_at", "failing_since")

#: The endpoint columns an attempt reads, in :class:`EndpointConfig`'s order.
ENDPOINT_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(EndpointConfig))

_ENDPOINTS = cast(Table, Endpoint.__table__)
_ENCRYPTED = tuple(
    name for name in ENDPOINT_COLUMNS if isinstance(_ENDPOINTS.c[name].type, EncryptedText)
)
_ENCRYPTED_JSON = tuple(
    name for name in ENDPOINT_COLUMNS if isinstance(_ENDPOINTS.c[name].type, EncryptedJSON)
)


@dataclass(frozen=True)
class Job:
    """A claimed delivery with all one attempt needs."""

    delivery: DeliveryRef
    #: This attempt's number, from 1.
    number: int
    endpoint: EndpointConfig
    body: dict[str, Any]
    #: The claim's fencing token: the record writes state only while the delivery's claim
    #: counter and lease still have these values (no other worker claimed it since, and the
    #: claim was not lost with a crash of the database: see webhooks.delivery.postgres).
    claim: int = 0
    #: The lease's end as the database returned it (compared, never computed with).
    lease: object = None

    @classmethod
    def from_row(cls, delivery_id: str, row: Mapping[str, Any], *, decrypt: bool = True) -> Job:
        """From a claim's row (:func:`load_sql`)."""
        endpoint = EndpointConfig.from_row(row, decrypt=decrypt)
        attempts = row["attempts"]
        return cls(
            delivery=DeliveryRef(delivery_id, endpoint.id, row["type"], attempts),
            number=attempts + 1,
            endpoint=endpoint,
            body=envelope(
                row["event_id"], row["type"], cast(datetime, utc(row["timestamp"])), row["data"]
            ),
            claim=row["claims"],
            lease=row["lease"],
        )


def load_sql(claimed: str) -> str:
    """What an attempt reads, for the claim ``claimed`` (a relation with ``attempts``,
    ``claims``, ``lease``, ``event_id`` and ``endpoint_id``)."""
    endpoint_columns = ", ".join(f"e.{name}" for name in ENDPOINT_COLUMNS)
    return f"""
    SELECT claimed.attempts, claimed.claims, claimed.lease, claimed.event_id,
           ev.type, ev.data, ev.timestamp, {endpoint_columns}
    FROM {claimed}
    JOIN events AS ev ON ev.id = claimed.event_id
    JOIN endpoints AS e ON e.id = claimed.endpoint_id
    """


def load_types() -> dict[str, TypeEngine[Any]]:
    """The types of :func:`load_sql`'s columns that need converting from stored values
    (secrets stay encrypted text: :class:`EndpointConfig` decrypts them, as it must for the
    prepared statements' rows, which skip SQLAlchemy's type processing)."""
    events = cast(Table, Event.__table__)
    types: dict[str, TypeEngine[Any]] = {
        "data": events.c.data.type,
        "timestamp": events.c.timestamp.type,
    }
    for name in ENDPOINT_COLUMNS:
        if name not in _ENCRYPTED and name not in _ENCRYPTED_JSON:
            types[name] = _ENDPOINTS.c[name].type
    return types


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


SECRET_CACHE_SECONDS = 300.0
"""How long a worker keeps a decrypted secret (keyed by its ciphertext) to skip Fernet."""

_SECRET_CACHE_SIZE = 4096
_decrypted: dict[str, tuple[str, float]] = {}


def _decrypt(token: str | None) -> str | None:
    """:func:`webhooks.core.crypto.decrypt`, remembered briefly per ciphertext.

    A Fernet token is unique to one encryption, so a rotated or edited secret is a new key
    here: nothing stale is ever served, and an entry lives at most
    :data:`SECRET_CACHE_SECONDS`. The plaintext is in this process's memory for that long.
    """
    if token is None:
        return None
    now = time.monotonic()
    hit = _decrypted.get(token)
    if hit is not None and hit[1] > now:
        return hit[0]
    plaintext = crypto.decrypt(token)
    if len(_decrypted) >= _SECRET_CACHE_SIZE:
        _decrypted.clear()
    _decrypted[token] = (plaintext, now + SECRET_CACHE_SECONDS)
    return plaintext
