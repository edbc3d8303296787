"""Rolling up completed hours of attempts into ``attempt_hours``, so that a week of one
endpoint is 168 small rows to read instead of every attempt of the week.

An hour is rolled up once it is :data:`SETTLE` past its end: an attempt's row is written up to
:data:`~webhooks.history.queries.RECORDING_SLACK` after it started, so by then no more rows
can arrive for it (the id-bounded history queries rely on the same bound). Beat runs
:func:`roll_up` every few minutes (the ``webhooks.roll_up`` task); a reader that needs an
hour nobody has rolled up yet (beat not running, or just upgraded) rolls it up itself
(:func:`fill`). Nothing is added to the delivery path: attempts are counted from their rows,
in one grouped query per run of hours, for every endpoint at once.

Postgres only: on SQLite (the embedded default, small by nature) the readers count every
interval live from ``attempts`` (:mod:`webhooks.history.intervals`), and these tables stay
empty. Retention purges them with the rest of the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.core.db import get_engine, new_session
from webhooks.history.queries import RECORDING_SLACK, Window, attempt_succeeded
from webhooks.history.retention import cutoff
from webhooks.history.tally import Tally
from webhooks.models import Attempt, AttemptHour, RolledUpHour

ROLL_UP_TASK = "webhooks.roll_up"

HOUR = timedelta(hours=1)

SETTLE = timedelta(minutes=5)
"""How long after its end an hour is rolled up (more than ``RECORDING_SLACK``)."""

LOOKBACK = timedelta(days=8)
"""How far back :func:`roll_up` keeps hours rolled up: the longest window read (7 days) and
its alignment."""

HOURS_PER_RUN = 24
"""Most hours one :func:`roll_up` rolls up: a first run after an upgrade catches up over a
few runs, each one bounded query."""


def rolls_up(session: Session) -> bool:
    """Whether this database keeps ``attempt_hours`` (Postgres) or is counted live (SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour ``at`` is in."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def horizon(now: datetime | None = None) -> datetime:
    """Hours that start before this are settled: their attempts are all written."""
    return hour_of((now or clock.now()) - SETTLE)


def _runs(hours: Iterable[datetime]) -> Iterator[list[datetime]]:
    """``hours`` (sorted) in runs of consecutive ones."""
    run: list[datetime] = []
    for hour in hours:
        if run and hour != run[-1] + HOUR:
            yield run
            run = []
        run.append(hour)
    if run:
        yield run


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def fill(engine: Engine, hours: Sequence[datetime]) -> dict[tuple[str, datetime], Tally]:
    """Roll up ``hours`` (settled, sorted) for every endpoint, and return what was counted.

    Two fills of the same hour at once (beat and a reader) count the same rows; whichever
    writes second writes nothing (``ON CONFLICT DO NOTHING``).
    """
    counted: dict[tuple[str, datetime], Tally] = {}
    with engine.begin() as connection:
        for run in _runs(hours):
            start, end = run[0], run[-1] + HOUR
            hour = func.date_trunc("hour", func.timezone("UTC", Attempt.started_at)).label("hour")
            ping = Attempt.delivery_id.is_(None).label("ping")
            ok = attempt_succeeded().label("ok")
            columns = (Attempt.endpoint_id, hour, ping, ok, Attempt.duration_ms)
            window = Window(start, end)
            query = (
                select(*columns, func.count())
                .where(*window.conditions(Attempt.id, Attempt.started_at, "att", RECORDING_SLACK))
                .where(Attempt.started_at < end)
                .group_by(*columns)
            )
            for endpoint_id, at, is_ping, ok_, duration, times in connection.execute(query):
                key = (endpoint_id, at.replace(tzinfo=UTC))
                tally = counted.setdefault(key, Tally(bucketed=True))
                tally.count(ping=bool(is_ping), ok=bool(ok_), duration_ms=duration, times=times)
        if counted:
            rows = [
                {
                    "endpoint_id": endpoint_id,
                    "hour": at,
                    "attempts": tally.attempts,
                    "succeeded": tally.succeeded,
                    "pings": tally.pings,
                    "pings_succeeded": tally.pings_succeeded,
                    "latency": tally.stored_latency(),
                }
                for (endpoint_id, at), tally in counted.items()
            ]
            connection.execute(insert(AttemptHour).on_conflict_do_nothing(), rows)
        if hours:
            marks = [{"hour": at, "rolled_up_at": clock.now()} for at in hours]
            connection.execute(insert(RolledUpHour).on_conflict_do_nothing(), marks)
    return counted


def missing_hours(session: Session, hours: Sequence[datetime]) -> list[datetime]:
    """Those of ``hours`` (sorted) not rolled up yet."""
    if not hours:
        return []
    done = set(
        session.scalars(
            select(RolledUpHour.hour).where(
                RolledUpHour.hour >= hours[0], RolledUpHour.hour <= hours[-1]
            )
        )
    )
    return [hour for hour in hours if hour not in done]


def rolled_up(
    session: Session, endpoint_ids: Sequence[str], hours: Sequence[datetime]
) -> dict[tuple[str, datetime], Tally]:
    """The tallies of ``endpoint_ids`` in ``hours`` (settled, sorted), rolling up the hours
    not rolled up yet; an endpoint without attempts in an hour is left out."""
    if not hours or not endpoint_ids:
        return {}
    missing = missing_hours(session, hours)
    found: dict[tuple[str, datetime], Tally] = {}
    wanted = set(endpoint_ids)
    if missing:
        fresh = fill(_engine(session), missing)
        found.update((key, tally) for key, tally in fresh.items() if key[0] in wanted)
    skip = set(missing)
    rows = session.execute(
        select(
            AttemptHour.endpoint_id,
            AttemptHour.hour,
            AttemptHour.attempts,
            AttemptHour.succeeded,
            AttemptHour.pings,
            AttemptHour.pings_succeeded,
            AttemptHour.latency,
        ).where(
            AttemptHour.endpoint_id.in_(list(endpoint_ids)),
            AttemptHour.hour >= hours[0],
            AttemptHour.hour <= hours[-1],
        )
    )
    needed = set(hours)
    for endpoint_id, at, attempts, succeeded, pings, pings_ok, latency in rows:
        if at in needed and at not in skip:
            found[(endpoint_id, at)] = Tally.stored(attempts, succeeded, pings, pings_ok, latency)
    return found


def roll_up(*, now: datetime | None = None, most: int = HOURS_PER_RUN) -> int:
    """Roll up the settled hours of the last :data:`LOOKBACK` (within the retention) not rolled
    up yet, newest first, at most ``most`` of them; returns how many. Nothing on SQLite."""
    end = horizon(now)
    kept = cutoff(now)  # older hours are purged: rolling them up again would churn
    start = max(hour_of(end - LOOKBACK), hour_of(kept) + HOUR)
    hours = [start + HOUR * n for n in range(max(int((end - start) / HOUR), 0))]
    with new_session() as session:
        if not rolls_up(session):
            return 0
        missing = missing_hours(session, hours)[-most:]
    fill(get_engine(), missing)
    return len(missing)
