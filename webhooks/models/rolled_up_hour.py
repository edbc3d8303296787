"""Rolled-up hours: the UTC hours whose attempts are counted in ``attempt_hours``, for every
endpoint (an endpoint without attempts in such an hour has no row there, and counts 0)."""

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from webhooks.core.clock import now
from webhooks.models.base import Base


class RolledUpHour(Base):
    __tablename__ = "rolled_up_hours"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    rolled_up_at: Mapped[datetime] = mapped_column(default=now)
