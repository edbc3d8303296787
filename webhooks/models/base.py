"""The declarative base and the column types that make one schema fit Postgres and SQLite."""

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, MetaData, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from webhooks.core import crypto

#: JSON everywhere, JSONB on Postgres (indexable, compact, validated on write).
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on Postgres; on SQLite, which keeps no zone, UTC is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use webhooks.core.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EncryptedText(TypeDecorator[str]):
    """Text encrypted with ``WEBHOOKS_SECRET_KEY`` on the way in, decrypted on the way out."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.decrypt(value)


class EncryptedHeaders(TypeDecorator[dict[str, Any]]):
    """An endpoint's custom headers: JSON whose credential-like values are encrypted at rest
    (:func:`webhooks.core.crypto.seal_headers`); plain on the way out."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        return None if value is None else crypto.seal_headers(value)

    def process_result_value(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        return None if value is None else crypto.open_headers(value)


class EncryptedJSON(TypeDecorator[dict[str, Any]]):
    """A JSON object kept as :class:`EncryptedText`: for settings that mix names with secrets
    (an auth password, a client certificate's key), so no part of them is readable at rest."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.encrypt(dump_json(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else load_json(crypto.decrypt(value))


def dump_json(value: dict[str, Any]) -> str:
    """The text :class:`EncryptedJSON` encrypts."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def load_json(text: str) -> dict[str, Any]:
    """The object back from :func:`dump_json`'s text (after decryption)."""
    value: dict[str, Any] = json.loads(text)
    return value


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        }
    )
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }
