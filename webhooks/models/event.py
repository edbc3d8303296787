"""Events: what a producer sent, once, whatever number of endpoints receive it."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webhooks.core.clock import now
from webhooks.core.ids import new_id
from webhooks.models.base import Base


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # The idempotency guarantee lives here, not in a check-then-insert.
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index(None, "tenant_id", "id"),
        Index(None, "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("evt"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]]
    #: The event's own time, given by the producer or taken at enqueue.
    timestamp: Mapped[datetime]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=now)
