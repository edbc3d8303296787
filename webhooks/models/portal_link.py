"""Portal links: single-use, short-lived invitations into one tenant's console.

Like tokens and session keys, only the SHA-256 of the link's key is stored. ``used_at`` is set
by the one request that redeems it, in the same statement that checks it is unused.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from webhooks.core.clock import now
from webhooks.core.ids import new_id
from webhooks.models.base import Base


class PortalLink(Base):
    __tablename__ = "portal_links"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pl"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
