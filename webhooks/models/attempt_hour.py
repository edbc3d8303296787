"""Attempt hours: an endpoint's attempts of one completed UTC hour, counted once.

The console's 24 h and 7 d charts and the stats' longer windows read these rows instead of
every attempt of the span (:mod:`webhooks.history.rollup` fills them, :mod:`webhooks.history
.intervals` reads them). An hour without attempts for an endpoint has no row: which hours are
counted is kept in :class:`~webhooks.models.rolled_up_hour.RolledUpHour`.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from webhooks.models.base import Base


class AttemptHour(Base):
    __tablename__ = "attempt_hours"

    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    #: The hour's start (UTC, on the hour).
    hour: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    #: Delivery attempts started in the hour, and those that got a 2xx in time.
    attempts: Mapped[int]
    succeeded: Mapped[int]
    #: PINGs, counted apart as the stats count them.
    pings: Mapped[int]
    pings_succeeded: Mapped[int]
    #: The delivery attempts' durations as a histogram: bucket's lower bound in ms (a string,
    #: as JSON keys are) → how many (:mod:`webhooks.history.tally` says the bounds).
    latency: Mapped[dict[str, Any]]
