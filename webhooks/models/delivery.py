"""Deliveries: one event on its way to one endpoint, with its retry state.

The due time of every pending retry lives in ``next_attempt_at`` so that no broker, countdown
or process is the only place that remembers it.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from webhooks.core.clock import now
from webhooks.core.ids import new_id
from webhooks.models.base import Base


class Hold(StrEnum):
    """What set an open delivery's lease or due time (``deliveries.hold``), if not a
    hand-over to the broker."""

    CLAIMED = "claimed"
    DEFERRED = "deferred"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


#: States in which a delivery still has an attempt to make.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)

_open = text("status IN ('pending', 'retrying')")
_waiting = text("status IN ('pending', 'retrying') AND next_attempt_at IS NULL")
_deferred = text("hold = 'deferred' AND status IN ('pending', 'retrying')")
_failed = text("status = 'failed'")
_dead_letter_sent = text("status = 'failed' AND locked_until IS NOT NULL")


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        # Every delivery row is updated twice per attempt (claim, record) by updates that
        # cannot be HOT (the lease and the status are indexed, below), and each such update
        # inserts into every index whose predicate the new row version matches: so few
        # indexes cover all rows (docs/performance.md, "Writes per delivery").
        #
        # Ids are ULIDs, so ordering by id is ordering by creation time: an endpoint's
        # deliveries in any state, newest first (history lists), and with ``status`` stored
        # in the index, counted by state over a window from the index alone (stats).
        Index(None, "endpoint_id", "id", postgresql_include=["status"]),
        # An endpoint's failed deliveries (history filtered to failures, recovery): few among
        # many successes, and a row enters it once, when it fails for good.
        Index(
            "ix_deliveries_failed",
            "endpoint_id",
            "id",
            postgresql_where=_failed,
            sqlite_where=_failed,
        ),
        Index(None, "tenant_id", "id"),
        Index(None, "event_id"),
        # The sweeper's "what is due" scan reads only open deliveries.
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=_open,
            sqlite_where=_open,
        ),
        # Failed deliveries whose dead letter was published but not yet received (the sweeper
        # publishes it again if the broker lost it): a handful of rows, however long the history.
        Index(
            "ix_deliveries_dead_letters",
            "locked_until",
            postgresql_where=_dead_letter_sent,
            sqlite_where=_dead_letter_sent,
        ),
        # Deliveries parked until their endpoint lets them go (disabled, rate limit, FIFO,
        # open circuit), oldest first: what a release takes (webhooks.delivery.waiting).
        Index(
            "ix_deliveries_waiting",
            "endpoint_id",
            "id",
            postgresql_where=_waiting,
            sqlite_where=_waiting,
        ),
        # Deliveries deferred behind their endpoint's in-flight cap, oldest first: what the
        # slot an attempt frees lets go (webhooks.delivery.state.release_sql).
        Index(
            "ix_deliveries_deferred",
            "endpoint_id",
            "id",
            postgresql_where=_deferred,
            sqlite_where=_deferred,
        ),
        # The per-endpoint in-flight cap counts live claims of one endpoint's open deliveries.
        Index(
            "ix_deliveries_in_flight",
            "endpoint_id",
            "locked_until",
            postgresql_where=_open,
            sqlite_where=_open,
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dlv"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    #: When the next attempt is due; None once the delivery is finished.
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=now)
    #: A worker's claim: until then, no other worker sends this delivery (see
    #: webhooks.delivery.state for what a time in the past means).
    locked_until: Mapped[datetime | None]
    #: How many times it was claimed: the fencing token of the latest claim.
    claims: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    #: A redeliver arrived during a live claim: due again as soon as that attempt ends.
    redeliver_requested: Mapped[bool] = mapped_column(default=False, server_default=false())
    last_status_code: Mapped[int | None]
    #: A rate-limit slot is reserved for it at ``next_attempt_at`` (or it is the circuit's
    #: probe): its claim takes no slot of its own (webhooks.delivery.waiting).
    admitted: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: What its lease and due time were last set by, when that is not a hand-over:
    #: ``claimed`` (a worker's claim: once its lease lapsed, no message of it is queued) or
    #: ``deferred`` (its endpoint was at its in-flight cap, not a scheduled retry: the next
    #: slot an attempt frees makes it due at once); NULL otherwise (webhooks.delivery.state).
    hold: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
