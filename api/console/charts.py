"""Charts as SVG drawn on the server: no script, nothing fetched, escaped like any markup.

:func:`charts` turns an endpoint's :class:`~webhooks.history.series.Bucket` list into
coordinates; ``console/_charts.html`` draws them: attempts per interval as bars split by
outcome, the success rate, and p50/p95 latency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from api.console.filters import timestamp
from webhooks.history.series import Bucket

WIDTH = 600
HEIGHT = 140
#: Room above the plot for the scale label.
TOP = 14


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Line:
    """A named series: its points, drawn joined and each as a dot (a lone point shows too)."""

    name: str
    points: tuple[tuple[float, float], ...]

    @property
    def svg_points(self) -> str:
        return " ".join(f"{x},{y}" for x, y in self.points)


@dataclass(frozen=True)
class Chart:
    """One chart's drawing: bars, or lines; ``start`` and ``end`` label the time axis."""

    title: str
    scale: str
    start: str
    end: str
    bars: tuple[Bar, ...] = ()
    lines: tuple[Line, ...] = ()


def _y(value: float, top: float) -> float:
    """The y of ``value`` on a scale of 0 to ``top`` (SVG's y grows downwards)."""
    plot = HEIGHT - TOP
    return round(HEIGHT - (value / top if top else 0) * plot, 1)


def _line(
    name: str, buckets: Sequence[Bucket], value: Callable[[Bucket], float | None], top: float
) -> Line:
    step = WIDTH / len(buckets)
    return Line(
        name,
        tuple(
            (round(step * (index + 0.5), 1), _y(measured, top))
            for index, bucket in enumerate(buckets)
            if (measured := value(bucket)) is not None
        ),
    )


def _attempts(buckets: Sequence[Bucket], start: str, end: str) -> Chart:
    top = max((bucket.attempts for bucket in buckets), default=0) or 1
    step = WIDTH / len(buckets)
    bars = []
    for index, bucket in enumerate(buckets):
        ok_y = _y(bucket.succeeded, top)
        failed_y = _y(bucket.attempts, top)
        bars.append(
            Bar(
                x=round(step * index + 1, 1),
                width=round(max(step - 2, 1), 1),
                ok_y=ok_y,
                ok_height=round(HEIGHT - ok_y, 1),
                failed_y=failed_y,
                failed_height=round(ok_y - failed_y, 1),
                title=f"{timestamp(bucket.start)}: {bucket.succeeded} succeeded,"
                f" {bucket.failed} failed",
            )
        )
    return Chart("Attempts (succeeded / failed)", f"max {top}", start, end, bars=tuple(bars))


def charts(buckets: Sequence[Bucket], end: datetime) -> list[Chart]:
    """The attempts, success-rate and latency charts of buckets ending at ``end``."""
    if not buckets:
        return []
    start, until = timestamp(buckets[0].start), timestamp(end)
    p95s = [bucket.latency_ms.p95 for bucket in buckets if bucket.latency_ms.p95 is not None]
    slowest = max(p95s, default=0.0) or 1.0
    return [
        _attempts(buckets, start, until),
        Chart(
            "Success rate",
            "100%",
            start,
            until,
            lines=(_line("rate", buckets, lambda b: b.success_rate, 1.0),),
        ),
        Chart(
            "Latency p50 / p95",
            f"{slowest:.0f} ms",
            start,
            until,
            lines=(
                _line("p50", buckets, lambda b: b.latency_ms.p50, slowest),
                _line("p95", buckets, lambda b: b.latency_ms.p95, slowest),
            ),
        ),
    ]
