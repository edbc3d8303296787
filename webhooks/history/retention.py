"""Purging history older than ``WEBHOOKS_HISTORY_RETENTION_DAYS``.

Beat runs :func:`purge` hourly (the ``webhooks.purge`` task); ``webhooks purge`` runs it now.
Children go before parents, attempts, then deliveries, then events, so no delete has rows to
cascade to. Each statement deletes at most :data:`BATCH` rows,
``DELETE ... WHERE id IN (SELECT id ... LIMIT n)``, in a transaction of its own: row locks
are held for one short statement, never for the whole purge, and producers and workers
inserting meanwhile are not held up (Postgres deletes take row locks only; the table stays
writable). Each batch is found through an index on its age: ``attempts.started_at``,
``events.created_at``, and for deliveries the primary key (their ids are their creation
times). The purge's commits do not wait for their WAL flush (``synchronous_commit = off``,
for its own transactions only), so a producer's commit does not queue behind a purge
commit's flush.

Open deliveries are kept, whatever their age, with their event and their attempts, until they
finish: a delivery that is still to be sent is not history yet, and dropping it would lose a
delivery that must never be lost (a disabled endpoint can park one for weeks). The
purge after it finishes removes it once it is older than the retention. A delivery's age is
its creation time, so one created long ago and redelivered recently goes with its event.

On Postgres, ``attempts`` is partitioned by the delivery's creation day
(:mod:`webhooks.history.partitions`), and the purge first drops every day's partition that
ended before the cutoff and holds no open delivery's attempts: a day of attempts goes in
one catalog change instead of hundreds of thousands of row deletes, and leaves no dead rows
for vacuum. A day that still has an open delivery keeps its partition, and its finished
attempts go through the row deletes below, as the attempts without a delivery (PINGs, in
the default partition) do. The deliveries and events are then deleted in batches as
before; the dropped attempts leave their deletes nothing to cascade to. A delivery of such
a day redelivered between the check and the drop (a redeliver of history past the
retention) keeps its row and its new attempts, not its earlier attempts: the row deletes
had the same race, losing the whole delivery.

The hourly rollup of attempts (:mod:`webhooks.history.rollup`) goes hour by hour, once an
hour has wholly passed the retention.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Delete, delete, exists, select
from sqlalchemy.orm import aliased

from webhooks.core import clock
from webhooks.core.config import get_settings
from webhooks.core.db import get_engine
from webhooks.history import partitions
from webhooks.history.queries import CREATION_SLACK, id_floor
from webhooks.models import OPEN_STATUSES, Attempt, AttemptHour, Delivery, Event, RolledUpHour

log = logging.getLogger("webhooks.retention")

PURGE_TASK = "webhooks.purge"

BATCH = 500
"""Rows per DELETE statement (and transaction): each commit's WAL stays small, so the
commits of concurrent producers and workers do not queue behind a large flush."""

PAUSE = 0.02
"""Seconds between two batches: room for the WAL writer and others' commits. A catch-up
purge of 500,000 rows takes 20 s longer for it; an hourly one, a fraction of a second."""


@dataclass(frozen=True)
class Purged:
    attempts: int = 0
    deliveries: int = 0
    events: int = 0
    #: Daily partitions of attempts dropped whole (their rows are not counted above).
    partitions: int = 0
    #: Rows of the hourly rollup (``attempt_hours``, :mod:`webhooks.history.rollup`).
    attempt_hours: int = 0

    @property
    def total(self) -> int:
        return self.attempts + self.deliveries + self.events + self.attempt_hours


def cutoff(now: datetime | None = None) -> datetime:
    """Rows older than this are purged."""
    days = get_settings().history_retention_days
    return (now or clock.now()) - timedelta(days=days)


def _statements(before: datetime, batch: int) -> tuple[Delete, Delete, Delete]:
    open_delivery = aliased(Delivery)
    attempts = select(Attempt.id).where(
        Attempt.started_at < before,
        ~exists().where(
            open_delivery.id == Attempt.delivery_id, open_delivery.status.in_(OPEN_STATUSES)
        ),
    )
    # Found by id (a ULID minted within CREATION_SLACK of ``created_at``): the primary key
    # is the age index, so no index on ``created_at`` is written by every claim and record.
    deliveries = select(Delivery.id).where(
        Delivery.id < id_floor("dlv", before + CREATION_SLACK + timedelta(milliseconds=1)),
        Delivery.created_at < before,
        Delivery.status.not_in(OPEN_STATUSES),
    )
    events = select(Event.id).where(
        Event.created_at < before, ~exists().where(Delivery.event_id == Event.id)
    )
    return (
        delete(Attempt).where(Attempt.id.in_(attempts.limit(batch).scalar_subquery())),
        delete(Delivery).where(Delivery.id.in_(deliveries.limit(batch).scalar_subquery())),
        delete(Event).where(Event.id.in_(events.limit(batch).scalar_subquery())),
    )


def _without_flush_wait(connection: Connection) -> None:
    """Let this transaction's commit return before its WAL is on disk (Postgres only).

    A synchronous purge commit holds the WAL write lock while it flushes its batch (mostly
    full-page images), and a producer's commit queues behind it: that wait was the purge's
    share of a concurrent insert's worst latency. Nothing is lost by not waiting: a batch
    lost in a crash is still older than the retention, and the next purge deletes it again.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")


def _drain(statement: Delete, batch: int, pause: float) -> int:
    """Run ``statement`` in short transactions until it deletes less than a full batch,
    ``pause`` seconds apart."""
    total = 0
    while True:
        with get_engine().begin() as connection:
            _without_flush_wait(connection)
            deleted = connection.execute(statement).rowcount
        total += deleted
        if deleted < batch:
            return total
        time.sleep(pause)


_OPEN_IN_RANGE = (
    "SELECT EXISTS (SELECT 1 FROM deliveries WHERE id >= %(lower)s AND id < %(upper)s"
    " AND status IN ('pending', 'retrying'))"
)


def droppable(before: datetime) -> list[partitions.Partition]:
    """The daily partitions of attempts that retention can drop whole: every delivery of
    the day was created before ``before`` and none is still open (Postgres only)."""
    with get_engine().connect() as connection:
        if not partitions.is_partitioned(connection):
            return []
        return [
            partition
            for partition in partitions.existing(connection)
            if partition.ends <= before
            and not connection.exec_driver_sql(
                _OPEN_IN_RANGE, {"lower": partition.lower, "upper": partition.upper}
            ).scalar()
        ]


def drop_partitions(before: datetime) -> int:
    """Drop the partitions of :func:`droppable`; returns how many."""
    old = droppable(before)
    for partition in old:
        partitions.drop(partition)
    return len(old)


def _purge_rollup(before: datetime) -> int:
    """Delete the rolled-up hours that ended by ``before``: one statement each, as they are a
    row per endpoint and hour (an hourly purge deletes one hour's)."""
    last = before - timedelta(hours=1)
    with get_engine().begin() as connection:
        _without_flush_wait(connection)
        deleted = connection.execute(delete(AttemptHour).where(AttemptHour.hour <= last)).rowcount
        connection.execute(delete(RolledUpHour).where(RolledUpHour.hour <= last))
    return deleted


def purge(*, now: datetime | None = None, batch: int = BATCH, pause: float = PAUSE) -> Purged:
    """Delete the history older than the retention: the whole partitions that can go, then
    the rest in batches; returns what was deleted."""
    before = cutoff(now)
    dropped = drop_partitions(before)
    attempts, deliveries, events = (
        _drain(statement, batch, pause) for statement in _statements(before, batch)
    )
    purged = Purged(attempts, deliveries, events, dropped, _purge_rollup(before))
    if purged.total or dropped:
        log.info(
            "purged history before %s: %d partitions of attempts; "
            "%d attempts, %d deliveries, %d events, %d attempt hours",
            clock.rfc3339(before),
            dropped,
            purged.attempts,
            purged.deliveries,
            purged.events,
            purged.attempt_hours,
        )
    return purged
