"""Daily partitions of ``attempts`` on Postgres: created ahead, found, dropped.

``attempts`` is the largest history table (about three rows per delivery, each with its
request and response), so on Postgres it is partitioned by ``RANGE (delivery_id)``, one
partition per UTC day of the delivery's creation: delivery ids are ULIDs whose first 48 bits
are their creation time in ms, so the bounds are the id prefixes of two midnights
(:func:`webhooks.history.queries.id_floor`). Why the delivery's id and not the attempt's
time: the fencing's ``UNIQUE (delivery_id, attempt)`` must include the partition key to be
legal on a partitioned table, and every attempt of a delivery then sits in its delivery's
partition, which retention can drop once that day's deliveries are all finished.

Attempts without a delivery (a PING) have a NULL key, which only a ``DEFAULT`` partition
takes. That partition has ``CHECK (delivery_id IS NULL)``: an attempt of a day whose
partition is missing fails loudly (:data:`DEFAULT_CHECK`) instead of landing in the
default, where it would stop that day's partition from ever being created, and the check
lets Postgres create a partition without scanning the default. :func:`routed` is the
safety net around every insert: on that failure it creates the partition and runs the
insert again, so an insert never fails for a missing partition.

Creating or dropping a partition takes an ``ACCESS EXCLUSIVE`` lock on ``attempts`` (and
on the default partition) for a catalog change of a few milliseconds. Waiting for that
lock behind a long reader would queue every insert behind the waiter, so each try waits at
most :data:`LOCK_TIMEOUT` and is retried after a pause (``DETACH ... CONCURRENTLY`` would
avoid the lock, but Postgres refuses it while a default partition exists).

The embedded SQLite database has no partitions: every function here is a no-op there.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, Select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.core.db import get_engine
from webhooks.core.prepared import generic
from webhooks.history.queries import id_floor
from webhooks.models import Attempt

log = logging.getLogger("webhooks.partitions")

PARTITIONS_TASK = "webhooks.partitions"

TABLE = "attempts"
DEFAULT = "attempts_default"
#: The default partition's check: only attempts without a delivery belong there.
DEFAULT_CHECK = "ck_attempts_default_no_delivery"

AHEAD_DAYS = 2
"""Days of partitions kept ready after today: the hourly task can miss a day of runs before
an insert needs the safety net. Not more: every partition, even an empty one, adds to the
planning of the queries that cannot prune (an endpoint's run history plans them all, about
0.05 ms each)."""

LOCK_TIMEOUT = "20ms"
"""The longest a create or drop waits for its lock per try (inserts queue behind it)."""

TRIES = 50
PAUSE = 0.1

_NAME = re.compile(r"attempts_p(\d{8})")

T = TypeVar("T")


@dataclass(frozen=True)
class Partition:
    """One day's partition: attempts of the deliveries created that UTC day."""

    day: date

    @property
    def name(self) -> str:
        return f"attempts_p{self.day:%Y%m%d}"

    @property
    def lower(self) -> str:
        return id_floor("dlv", _midnight(self.day))

    @property
    def upper(self) -> str:
        return id_floor("dlv", _midnight(self.day + timedelta(days=1)))

    @property
    def ends(self) -> datetime:
        """When the last delivery of this partition was created (its upper bound)."""
        return _midnight(self.day + timedelta(days=1))

    @classmethod
    def of(cls, delivery_id: str) -> Partition:
        """The partition that holds ``delivery_id``'s attempts."""
        return cls(_ulid_time(delivery_id.split("_", 1)[1]).date())

    def create_sql(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} PARTITION OF {TABLE} "
            f"FOR VALUES FROM ('{self.lower}') TO ('{self.upper}')"
        )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, day_start(), tzinfo=UTC)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid_time(ulid: str) -> datetime:
    ms = 0
    for char in ulid[:10].upper():
        ms = ms * 32 + _CROCKFORD.index(char)
    return datetime.fromtimestamp(ms / 1000, UTC)


def is_partition(name: str) -> bool:
    """``name`` is one of the partitions of ``attempts`` (tables the models do not list)."""
    return name == DEFAULT or _NAME.fullmatch(name) is not None


def compared(name: str | None, kind: str, parent_names: object) -> bool:
    """Alembic's ``include_name``: schema comparisons skip the partitions, which the models
    (one ``attempts`` table) do not name."""
    return not (kind == "table" and name is not None and is_partition(name))


def is_partitioned(connection: Connection) -> bool:
    """``attempts`` is a partitioned table here (Postgres after migration 0012)."""
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass(%(table)s)", {"table": TABLE}
    ).scalar()
    return kind == "p"


def existing(connection: Connection) -> list[Partition]:
    """The daily partitions of ``attempts``, oldest first."""
    names = connection.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%(table)s)",
        {"table": TABLE},
    ).scalars()
    days = [datetime.strptime(m.group(1), "%Y%m%d").date() for n in names if (m := _NAME.match(n))]
    return [Partition(day) for day in sorted(days)]


def days_ahead(today: date, ahead: int = AHEAD_DAYS) -> Iterator[Partition]:
    """Yesterday (a clock a little behind ours), today and ``ahead`` days after it."""
    for offset in range(-1, ahead + 1):
        yield Partition(today + timedelta(days=offset))


def _with_lock_timeout(engine: Engine, sql: str) -> None:
    """Run one catalog change in a transaction whose lock wait is :data:`LOCK_TIMEOUT`,
    again after a pause while the lock is not granted in time."""
    for attempt in range(TRIES):
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                connection.exec_driver_sql(sql)
            return
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != "55P03" or attempt == TRIES - 1:
                raise
            time.sleep(PAUSE)


def create(partitions: Iterable[Partition], engine: Engine | None = None) -> int:
    """Create the missing ones of ``partitions``; returns how many were created."""
    engine = engine or get_engine()
    with engine.connect() as connection:
        if not is_partitioned(connection):
            return 0
        have = {partition.day for partition in existing(connection)}
    created = 0
    for partition in partitions:
        if partition.day not in have:
            _with_lock_timeout(engine, partition.create_sql())
            log.info("created partition %s", partition.name)
            created += 1
    return created


def ensure_ahead(now: datetime | None = None, engine: Engine | None = None) -> int:
    """Create the partitions of yesterday, today and :data:`AHEAD_DAYS` more (the
    ``webhooks.partitions`` beat task, and migration 0012)."""
    return create(days_ahead((now or clock.now()).date()), engine)


def drop(partition: Partition, engine: Engine | None = None) -> None:
    """Drop one partition with all its rows."""
    _with_lock_timeout(engine or get_engine(), f"DROP TABLE IF EXISTS {partition.name}")
    log.info("dropped partition %s", partition.name)


def _missing_partition(exc: IntegrityError) -> bool:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == DEFAULT_CHECK


def routed(insert: Callable[[], T], delivery_id: str | None) -> T:
    """Run ``insert`` (a whole statement or transaction that writes ``delivery_id``'s attempt);
    if its day has no partition, create it and run ``insert`` once more."""
    try:
        return insert()
    except IntegrityError as exc:
        if delivery_id is None or not _missing_partition(exc):
            raise
        log.warning("no partition for %s: creating it", delivery_id)
        create([Partition.of(delivery_id)])
        return insert()


def planned_once(session: Session, query: Select[Any]) -> Executable:
    """``query``, run on a generic plan prepared once per connection
    (:func:`webhooks.core.prepared.generic`) when it reads ``attempts``: a read that is not
    bounded by the partition key (an endpoint's run history, counts over a time window) is
    otherwise planned over every partition on every call, which cost several times its
    execution. Other queries are returned as they are (planned per call, as usual)."""
    return generic(session, query) if Attempt.__table__ in query.get_final_froms() else query
