"""Tenants: the customers of the platform, each with its own endpoints and history."""

from datetime import datetime

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from webhooks.core.clock import now
from webhooks.core.ids import new_id
from webhooks.models.base import Base


class Tenant(Base):
    __tablename__ = "tenants"
    #: ``acme`` and ``ACME`` would be two tenants that people (and logs) cannot tell apart.
    __table_args__ = (Index("ix_tenants_uid_lower", text("lower(uid)"), unique=True),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
