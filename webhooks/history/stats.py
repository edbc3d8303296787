"""An endpoint's health at a glance: delivery states, success rate, latency, last outcomes.

Over each of the windows 1 h, 24 h and 7 d: deliveries created in the window by state, the
delivery attempts started in it, the share of them that succeeded (a 2xx in time), and the
p50/p95 of their durations, in whole milliseconds. PINGs are counted apart: they are requests
to the endpoint too, but a receiver answering events well while PINGs fail (or the reverse)
should not read as a middling success rate. Attempts are counted by
:mod:`webhooks.history.intervals`: the settled whole hours of a window from the hourly rollup,
the rest live. Counts are exact; latency percentiles are ``percentile_cont``'s, exact over
attempts read live and from the rollup's histogram otherwise (:mod:`webhooks.history.tally`).

Every query is bounded by the window through the id (see :mod:`webhooks.history.queries`),
so it reads the ``(endpoint_id, status, id)`` and ``(endpoint_id, id)`` indexes from the
window's start rather than the endpoint's whole history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.core.prepared import generic
from webhooks.delivery.circuit import circuit_of
from webhooks.history.intervals import grouped_tallies, interval_tallies
from webhooks.history.queries import (
    CREATION_SLACK,
    Window,
    attempt_failed,
    attempt_succeeded,
    id_floor,
)
from webhooks.history.tally import Tally
from webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint

WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


@dataclass(frozen=True)
class Latency:
    """Percentiles of attempt durations, in milliseconds (None without attempts)."""

    p50: float | None
    p95: float | None

    @classmethod
    def of(cls, p50: float | None, p95: float | None) -> Latency:
        """From what the database returns (a Decimal, a float or None), in whole milliseconds:
        the durations are whole ones, and an interpolated ``6.399999999999999`` claims a
        precision nobody measured."""
        return cls(_milliseconds(p50), _milliseconds(p95))


@dataclass(frozen=True)
class PingStats:
    """PINGs started in a window, and how many of them succeeded."""

    attempts: int
    succeeded: int


@dataclass(frozen=True)
class WindowStats:
    deliveries: dict[str, int]
    #: Delivery attempts (PINGs are in ``pings``).
    attempts: int
    succeeded_attempts: int
    #: ``succeeded_attempts / attempts`` (4 decimals); None without attempts.
    success_rate: float | None
    latency_ms: Latency
    pings: PingStats


@dataclass(frozen=True)
class LastFailure:
    at: datetime
    status: int | None
    error: str | None


@dataclass(frozen=True)
class EndpointStats:
    endpoint_id: str
    generated_at: datetime
    #: The circuit breaker's state now (webhooks.delivery.circuit).
    circuit: str
    windows: dict[str, WindowStats]
    last_success_at: datetime | None
    last_failure: LastFailure | None


def _delivery_counts(session: Session, endpoint_id: str, window: Window) -> dict[str, int]:
    """Deliveries created in ``window`` by state.

    A delivery's id is minted within :data:`CREATION_SLACK` of its ``created_at``, so those
    with an id from ``since`` plus that slack on were certainly created in the window: they
    are counted on the ``(endpoint_id, id) INCLUDE (status)`` index alone (an index-only scan,
    no heap page per row), and only the slack's ids have their ``created_at`` read.
    """
    parts = [window.conditions(Delivery.id, Delivery.created_at, "dlv", CREATION_SLACK)]
    if window.since is not None:
        sure = id_floor("dlv", window.since + CREATION_SLACK + timedelta(milliseconds=1))
        later = Window(None, window.until)
        parts = [
            [
                Delivery.id >= sure,
                *later.conditions(Delivery.id, Delivery.created_at, "dlv", CREATION_SLACK),
            ],
            [*parts[0], Delivery.id < sure],
        ]
    counts = {status.value: 0 for status in DeliveryStatus}
    for where in parts:
        rows = session.execute(
            select(Delivery.status, func.count())
            .where(
                Delivery.endpoint_id == endpoint_id,
                *where,
            )
            .group_by(Delivery.status)
        )
        for status, count in rows:
            counts[status] += count
    return counts


@dataclass(frozen=True)
class AttemptSummary:
    """An endpoint's attempts in a window: how many, how many succeeded, latency."""

    attempts: int
    succeeded: int
    latency_ms: Latency

    @property
    def success_rate(self) -> float | None:
        return round(self.succeeded / self.attempts, 4) if self.attempts else None


def _summary(tally: Tally) -> AttemptSummary:
    latency = Latency.of(tally.percentile(0.5), tally.percentile(0.95))
    return AttemptSummary(tally.attempts, tally.succeeded, latency)


def _tallies(session: Session, endpoint_ids: Sequence[str], window: Window) -> dict[str, Tally]:
    if window.since is None:
        raise ValueError("attempt stats are over a window with a start")
    found = interval_tallies(session, endpoint_ids, [window.since], window.until)
    return {endpoint_id: tallies[0] for endpoint_id, tallies in found.items()}


def attempt_summaries(
    session: Session, endpoint_ids: Sequence[str], window: Window
) -> dict[str, AttemptSummary]:
    """:class:`AttemptSummary` of each endpoint in ``endpoint_ids`` (PINGs left out)."""
    return {
        endpoint_id: _summary(tally)
        for endpoint_id, tally in _tallies(session, endpoint_ids, window).items()
    }


def _milliseconds(value: float | None) -> float | None:
    return None if value is None else float(round(value))


def window_stats(
    session: Session, endpoint_id: str, window: Window, tally: Tally | None = None
) -> WindowStats:
    """The stats of ``window``; ``tally``: its attempts, when already counted."""
    if tally is None:
        tally = _tallies(session, [endpoint_id], window)[endpoint_id]
    summary = _summary(tally)
    return WindowStats(
        deliveries=_delivery_counts(session, endpoint_id, window),
        attempts=summary.attempts,
        succeeded_attempts=summary.succeeded,
        success_rate=summary.success_rate,
        latency_ms=summary.latency_ms,
        pings=PingStats(tally.pings, tally.pings_succeeded),
    )


def newest_attempts(session: Session, endpoint_ids: Sequence[str]) -> dict[str, Attempt]:
    """Each endpoint's newest attempt, one index lookup each (endpoints without one left out)."""
    newest: dict[str, Attempt] = {}
    for endpoint_id in endpoint_ids:
        newest_first = (
            select(Attempt)
            .where(Attempt.endpoint_id == endpoint_id)
            .order_by(Attempt.id.desc())
            .limit(1)
        )
        attempt = session.scalar(generic(session, newest_first))
        if attempt is not None:
            newest[endpoint_id] = attempt
    return newest


def window_starts(now: datetime) -> list[list[datetime]]:
    """Each of :data:`WINDOWS` up to ``now`` as a group of one interval, for
    :func:`~webhooks.history.intervals.grouped_tallies`: the windows nest, so they are counted
    over the intervals between their starts, and the rollup is read once."""
    return [[now - length] for length in WINDOWS.values()]


def endpoint_stats(
    session: Session,
    endpoint: Endpoint,
    *,
    now: datetime | None = None,
    tallies: Sequence[Tally] | None = None,
) -> EndpointStats:
    """The stats of one endpoint at ``now`` (default: now; the caller has checked it is the
    tenant's); ``tallies``: the attempts of each of :data:`WINDOWS`, when already counted (by
    :func:`~webhooks.history.series.stats_and_series`, with a chart's)."""
    now = clock.now() if now is None else now
    endpoint_id = endpoint.id
    if tallies is None:
        counted = grouped_tallies(session, [endpoint_id], window_starts(now), None)[endpoint_id]
        tallies = [group[0] for group in counted]
    newest = select(Attempt).where(Attempt.endpoint_id == endpoint_id).order_by(Attempt.id.desc())
    success = session.scalar(generic(session, newest.where(attempt_succeeded()).limit(1)))
    failure = session.scalar(generic(session, newest.where(attempt_failed()).limit(1)))
    return EndpointStats(
        endpoint_id=endpoint_id,
        generated_at=now,
        circuit=str(circuit_of(endpoint).shown(now)),
        windows={
            name: window_stats(session, endpoint_id, Window(now - length, None), tally)
            for (name, length), tally in zip(WINDOWS.items(), tallies, strict=True)
        },
        last_success_at=None if success is None else success.started_at,
        last_failure=None
        if failure is None
        else LastFailure(failure.started_at, failure.response_status, failure.error),
    )
