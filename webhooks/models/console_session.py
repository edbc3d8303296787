"""Console sessions: who is signed in to the web console, and with what rights.

The browser holds only a random session key in an ``HttpOnly`` cookie; the row keeps its
SHA-256, so a leaked table signs nobody in. A session signed in with an API token follows that
token (revoking the token ends its sessions); one opened by a portal link is bound to its
tenant with the scopes the link granted.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from webhooks.core.clock import now
from webhooks.core.ids import new_id
from webhooks.models.base import Base


class ConsoleSession(Base):
    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cs"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token it was signed in with; None for a session opened by a portal link.
    api_token_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    #: The tenant it is bound to; None for an admin session.
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    #: Carried by every form that changes something, and compared on submission.
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
