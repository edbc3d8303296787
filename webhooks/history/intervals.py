"""Endpoints' attempts counted over consecutive intervals: what the stats' windows and the
charts' buckets read.

Each interval is read in up to three parts: the settled whole hours inside it from
``attempt_hours`` (:mod:`webhooks.history.rollup`), and what lies before the first and after
the last of them (the start of a window that is not on the hour, the current hour and the one
before it until it settles) live from ``attempts``, on the ``(endpoint_id, id)`` index from the
part's start (the id bounds of :class:`~webhooks.history.queries.Window`). Adjacent live parts
are one query, split into intervals by a ``CASE`` on ``started_at``. Counts are exact either
way; latency percentiles are exact where every attempt was read live, and from the rollup's
histogram otherwise (:mod:`webhooks.history.tally`). On SQLite everything is read live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.core.prepared import generic
from webhooks.history.queries import RECORDING_SLACK, Window, attempt_succeeded, id_floor
from webhooks.history.rollup import HOUR, horizon, hour_of, rolled_up, rolls_up
from webhooks.history.tally import Tally
from webhooks.models import Attempt


@dataclass(frozen=True)
class _Live:
    """A stretch read live: ``[start, end)`` (``end`` included when it is the last interval's
    end, open when None), covering intervals ``first``... whose starts are ``starts``."""

    start: datetime
    end: datetime | None
    closed: bool
    first: int
    starts: tuple[datetime, ...]


def _ceil_hour(at: datetime) -> datetime:
    floor = hour_of(at)
    return floor if floor == at else floor + HOUR


def _plan(
    starts: Sequence[datetime], until: datetime | None, settled: datetime | None
) -> tuple[list[_Live], dict[datetime, int]]:
    """The live stretches, and the rolled-up hours with the interval each counts in."""
    hours: dict[datetime, int] = {}
    pieces: list[tuple[datetime, datetime | None, bool, int]] = []
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        end = until if last else starts[index + 1]
        first_hour = _ceil_hour(start)
        last_hour = first_hour
        if settled is not None:
            limit = settled if end is None else min(end, settled)
            last_hour = max(first_hour, hour_of(limit))
        if last_hour == first_hour:
            pieces.append((start, end, last, index))
            continue
        if start < first_hour:
            pieces.append((start, first_hour, False, index))
        for number in range(int((last_hour - first_hour) / HOUR)):
            hours[first_hour + HOUR * number] = index
        if end is None or last_hour < end or last:
            pieces.append((last_hour, end, last, index))
    stretches: list[_Live] = []
    for start, end, closed, index in pieces:
        if stretches and stretches[-1].end == start:
            joined = stretches.pop()
            stretches.append(
                _Live(joined.start, end, closed, joined.first, (*joined.starts, start))
            )
        else:
            stretches.append(_Live(start, end, closed, index, (start,)))
    return stretches, hours


def _live(
    session: Session, endpoint_ids: Sequence[str], stretch: _Live, tallies: dict[str, list[Tally]]
) -> None:
    """Count ``stretch``'s attempts into ``tallies``."""
    window = Window(stretch.start, stretch.end if stretch.closed else None)
    where: list[ColumnElement[bool]] = [
        Attempt.endpoint_id.in_(list(endpoint_ids)),
        *window.conditions(Attempt.id, Attempt.started_at, "att", RECORDING_SLACK),
    ]
    if stretch.end is not None and not stretch.closed:
        upper = stretch.end + RECORDING_SLACK + timedelta(milliseconds=1)
        where += [Attempt.started_at < stretch.end, Attempt.id < id_floor("att", upper)]
    grouped: list[Any] = [
        Attempt.endpoint_id,
        Attempt.delivery_id.is_(None).label("ping"),
        attempt_succeeded().label("ok"),
        Attempt.duration_ms,
    ]
    if len(stretch.starts) == 1:  # a constant (grouping by it would mean a column number)
        interval: ColumnElement[Any] = literal(stretch.first)
    else:
        whens = [
            (Attempt.started_at < later, stretch.first + number)
            for number, later in enumerate(stretch.starts[1:])
        ]
        interval = case(*whens, else_=stretch.first + len(stretch.starts) - 1).label("interval")
        grouped.append(interval)
    query = select(*grouped, interval, func.count()).where(*where).group_by(*grouped)
    for endpoint_id, ping, ok, duration, *_, index, times in session.execute(
        generic(session, query)
    ):
        tallies[endpoint_id][index].count(
            ping=bool(ping), ok=bool(ok), duration_ms=duration, times=times
        )


def interval_tallies(
    session: Session,
    endpoint_ids: Sequence[str],
    starts: Sequence[datetime],
    until: datetime | None,
) -> dict[str, list[Tally]]:
    """Each endpoint's tally of each interval: interval ``i`` is from ``starts[i]`` up to (not
    including) ``starts[i + 1]``; the last one up to ``until`` included (None: no end)."""
    return _count(session, endpoint_ids, starts, until, _settled(session))


def _settled(session: Session) -> datetime | None:
    """Before when hours are read from the rollup (None: everything live, on SQLite)."""
    return horizon(clock.now()) if rolls_up(session) else None


def _count(
    session: Session,
    endpoint_ids: Sequence[str],
    starts: Sequence[datetime],
    until: datetime | None,
    settled: datetime | None,
) -> dict[str, list[Tally]]:
    tallies = {endpoint_id: [Tally() for _ in starts] for endpoint_id in endpoint_ids}
    if not endpoint_ids or not starts:
        return tallies
    stretches, hours = _plan(starts, until, settled)
    for stretch in stretches:
        _live(session, endpoint_ids, stretch, tallies)
    for (endpoint_id, hour), tally in rolled_up(session, endpoint_ids, sorted(hours)).items():
        tallies[endpoint_id][hours[hour]].add(tally)
    return tallies


def grouped_tallies(
    session: Session,
    endpoint_ids: Sequence[str],
    groups: Sequence[Sequence[datetime]],
    until: datetime | None,
) -> dict[str, list[list[Tally]]]:
    """:func:`interval_tallies` of several sets of interval starts (``groups``, each sorted)
    up to the same ``until``, counted once: over the intervals between all their starts, then
    added up per group. So a page showing the stats' windows and a chart over the same week
    reads the rollup once and each live stretch once.

    A group's interval has the same figures as :func:`interval_tallies` of that group alone:
    where that would read a rolled-up hour, its latency is bucketed even if the finer split
    read all of it live.
    """
    found = {
        endpoint_id: [[Tally() for _ in group] for group in groups] for endpoint_id in endpoint_ids
    }
    starts = sorted({start for group in groups for start in group})
    settled = _settled(session)
    pieces = _count(session, endpoint_ids, starts, until, settled)
    position = {start: index for index, start in enumerate(starts)}
    for number, group in enumerate(groups):
        bucketed = set(_plan(group, until, settled)[1].values())
        ends = [position[start] for start in group[1:]] + [len(starts)]
        for index, start in enumerate(group):
            for endpoint_id in endpoint_ids:
                tally = found[endpoint_id][number][index]
                for piece in pieces[endpoint_id][position[start] : ends[index]]:
                    tally.add(piece)
                if index in bucketed:
                    tally.bucket_latency()
    return found
