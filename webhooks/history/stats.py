"""An endpoint's health at a glance: delivery states, success rate, latency, last outcomes.

Over each of the windows 1 h, 24 h and 7 d: deliveries created in the window by state, the
attempts started in it (PINGs included: they are requests to the endpoint too), the share of
them that succeeded (a 2xx in time), and the p50/p95 of their durations. Latency percentiles
are Postgres's ``percentile_cont``; on SQLite (the embedded default, small by nature) the
durations are fetched and interpolated the same way in Python.

Every query is bounded by the window through the id (see :mod:`webhooks.history_queries`),
so it reads the ``(endpoint_id, status, id)`` and ``(endpoint_id, id)`` indexes from the
window's start rather than the endpoint's whole history.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class WindowStats:
    deliveries: dict[str, int]
    attempts: int
    succeeded_attempts: int
    #: ``succeeded_attempts / attempts``; None without attempts.
    success_rate: float | None
    latency_ms: Latency


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


def _attempt_stats(
    session: Session, endpoint_id: str, window: Window
) -> tuple[int, int, float | None, float | None]:
    where = (
        Attempt.endpoint_id == endpoint_id,
        *window.conditions(Attempt.id, Attempt.started_at, "att", RECORDING_SLACK),
    )
    succeeded = func.count().filter(attempt_succeeded())
    if session.get_bind().dialect.name == "postgresql":
        total, ok, p50, p95 = session.execute(
            select(
                func.count(),
                succeeded,
                func.percentile_cont(0.5).within_group(Attempt.duration_ms),
                func.percentile_cont(0.95).within_group(Attempt.duration_ms),
            ).where(*where)
        ).one()
        return total, ok, p50, p95
    total, ok = session.execute(select(func.count(), succeeded).where(*where)).one()
    durations = [float(d) for d in session.scalars(select(Attempt.duration_ms).where(*where))]
    return total, ok, percentile(durations, 0.5), percentile(durations, 0.95)


def window_stats(session: Session, endpoint_id: str, window: Window) -> WindowStats:
    total, ok, p50, p95 = _attempt_stats(session, endpoint_id, window)
    return WindowStats(
        deliveries=_delivery_counts(session, endpoint_id, window),
        attempts=total,
        succeeded_attempts=ok,
        success_rate=ok / total if total else None,
        latency_ms=Latency(
            None if p50 is None else float(p50), None if p95 is None else float(p95)
        ),
    )


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
