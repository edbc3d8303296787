"""Attempts: the execution history, one row per HTTP request made for a delivery."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from webhooks.core.ids import new_id
from webhooks.models.base import Base

#: An attempt without a 2xx in time: an error, no response, or another status.
FAILED = text(
    "error IS NOT NULL OR response_status < 200 OR response_status >= 300"
    " OR response_status IS NULL"
)

#: An attempt made under a claim that still held.
COUNTED = text("NOT stale")


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (
        # The retried record's conflict target. On Postgres, where attempts is partitioned by
        # delivery_id (webhooks.history.partitions), a unique index must include it, and the
        # table has no primary key of its own: ids are ULIDs, unique by construction.
        Index("uq_attempts_id_delivery_id", "id", "delivery_id", unique=True),
        # Run history of an endpoint, newest first (ids are ULIDs: id order is start order).
        Index(None, "endpoint_id", "id"),
        Index(None, "delivery_id", "id"),
        Index(None, "started_at"),
        # Run history filtered to failures, and an endpoint's last failure: failures are
        # few among many successes, so they get an index of their own (the predicate is
        # webhooks.history.queries.attempt_failed, as Postgres normalises it).
        Index(
            "ix_attempts_failed", "endpoint_id", "id", postgresql_where=FAILED, sqlite_where=FAILED
        ),
        # One attempt sequence per delivery: numbers never repeat among the attempts that
        # counted.
        Index(
            "uq_attempts_delivery_id_attempt",
            "delivery_id",
            "attempt",
            unique=True,
            postgresql_where=COUNTED,
            sqlite_where=COUNTED,
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("att"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: None for a PING, which belongs to no delivery.
    delivery_id: Mapped[str | None] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    started_at: Mapped[datetime]
    duration_ms: Mapped[int]
    request_url: Mapped[str] = mapped_column(Text)
    request_headers: Mapped[dict[str, Any]]
    request_body: Mapped[str] = mapped_column(Text)
    response_status: Mapped[int | None]
    response_headers: Mapped[dict[str, Any] | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(32))
    #: Made by a worker whose claim had been taken over: kept as history, changed nothing.
    stale: Mapped[bool] = mapped_column(default=False, server_default=false())
