"""An endpoint's health at a glance: delivery states, success rate, latency, last outcomes.

Over each of the windows 1 h, 24 h and 7 d: deliveries created in the window by state, the
delivery attempts started in it, the share of them that succeeded (a 2xx in time), and the
p50/p95 of their durations, in whole milliseconds. PINGs are counted apart: they are requests
to the endpoint too, but a receiver answering events well while PINGs fail (or the reverse)
should not read as a middling success rate. Latency percentiles are Postgres's
``percentile_cont``; on SQLite (the embedded default, small by nature) the durations are
fetched and interpolated the same way in Python.

Every query is bounded by the window through the id (see :mod:`webhooks.history.queries`),
so it reads the ``(endpoint_id, status, id)`` and ``(endpoint_id, id)`` indexes from the
window's start rather than the endpoint's whole history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webhooks.core import clock
from webhooks.delivery.circuit import circuit_of
from webhooks.history.queries import (
    CREATION_SLACK,
    RECORDING_SLACK,
    Window,
    attempt_failed,
    attempt_succeeded,
)
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


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as Postgres's ``percentile_cont``."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _delivery_counts(session: Session, endpoint_id: str, window: Window) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(
            Delivery.endpoint_id == endpoint_id,
            *window.conditions(Delivery.id, Delivery.created_at, "dlv", CREATION_SLACK),
        )
        .group_by(Delivery.status)
    )
    counts = {status.value: 0 for status in DeliveryStatus}
    counts.update({status: count for status, count in rows})
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


_NO_ATTEMPTS = AttemptSummary(0, 0, Latency(None, None))


def attempt_summaries(
    session: Session, endpoint_ids: Sequence[str], window: Window
) -> dict[str, AttemptSummary]:
    """:class:`AttemptSummary` of each endpoint in ``endpoint_ids``, in one grouped query."""
    if not endpoint_ids:
        return {}
    where = (
        Attempt.endpoint_id.in_(list(endpoint_ids)),
        Attempt.delivery_id.is_not(None),  # PINGs are counted apart
        *window.conditions(Attempt.id, Attempt.started_at, "att", RECORDING_SLACK),
    )
    succeeded = func.count().filter(attempt_succeeded())
    found: dict[str, AttemptSummary] = {}
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            select(
                Attempt.endpoint_id,
                func.count(),
                succeeded,
                func.percentile_cont(0.5).within_group(Attempt.duration_ms),
                func.percentile_cont(0.95).within_group(Attempt.duration_ms),
            )
            .where(*where)
            .group_by(Attempt.endpoint_id)
        )
        for endpoint_id, total, ok, p50, p95 in rows:
            found[endpoint_id] = AttemptSummary(total, ok, Latency.of(p50, p95))
    else:
        durations: dict[str, list[float]] = defaultdict(list)
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for endpoint_id, duration, ok in session.execute(
            select(Attempt.endpoint_id, Attempt.duration_ms, attempt_succeeded()).where(*where)
        ):
            durations[endpoint_id].append(float(duration))
            counts[endpoint_id][0] += 1
            counts[endpoint_id][1] += bool(ok)
        for endpoint_id, (total, ok) in counts.items():
            values = durations[endpoint_id]
            found[endpoint_id] = AttemptSummary(
                total, ok, Latency.of(percentile(values, 0.5), percentile(values, 0.95))
            )
    return {endpoint_id: found.get(endpoint_id, _NO_ATTEMPTS) for endpoint_id in endpoint_ids}


def _ping_stats(session: Session, endpoint_id: str, window: Window) -> PingStats:
    total, ok = session.execute(
        select(func.count(), func.count().filter(attempt_succeeded())).where(
            Attempt.endpoint_id == endpoint_id,
            Attempt.delivery_id.is_(None),
            *window.conditions(Attempt.id, Attempt.started_at, "att", RECORDING_SLACK),
        )
    ).one()
    return PingStats(total, ok)


def _milliseconds(value: float | None) -> float | None:
    return None if value is None else float(round(value))


def window_stats(session: Session, endpoint_id: str, window: Window) -> WindowStats:
    summary = attempt_summaries(session, [endpoint_id], window)[endpoint_id]
    return WindowStats(
        deliveries=_delivery_counts(session, endpoint_id, window),
        attempts=summary.attempts,
        succeeded_attempts=summary.succeeded,
        success_rate=summary.success_rate,
        latency_ms=summary.latency_ms,
        pings=_ping_stats(session, endpoint_id, window),
    )


def newest_attempts(session: Session, endpoint_ids: Sequence[str]) -> dict[str, Attempt]:
    """Each endpoint's newest attempt, one index lookup each (endpoints without one left out)."""
    newest: dict[str, Attempt] = {}
    for endpoint_id in endpoint_ids:
        attempt = session.scalar(
            select(Attempt)
            .where(Attempt.endpoint_id == endpoint_id)
            .order_by(Attempt.id.desc())
            .limit(1)
        )
        if attempt is not None:
            newest[endpoint_id] = attempt
    return newest


def endpoint_stats(session: Session, endpoint: Endpoint) -> EndpointStats:
    """The stats of one endpoint now (the caller has checked it is the tenant's)."""
    now = clock.now()
    endpoint_id = endpoint.id
    newest = select(Attempt).where(Attempt.endpoint_id == endpoint_id).order_by(Attempt.id.desc())
    success = session.scalar(newest.where(attempt_succeeded()).limit(1))
    failure = session.scalar(newest.where(attempt_failed()).limit(1))
    return EndpointStats(
        endpoint_id=endpoint_id,
        generated_at=now,
        circuit=str(circuit_of(endpoint).shown(now)),
        windows={
            name: window_stats(session, endpoint_id, Window(now - length, None))
            for name, length in WINDOWS.items()
        },
        last_success_at=None if success is None else success.started_at,
        last_failure=None
        if failure is None
        else LastFailure(failure.started_at, failure.response_status, failure.error),
    )
