"""What a run measures: figures with their baselines and targets, and per-phase resources.

A :class:`Figure` is one row of the table: a value, the baseline it is compared to (measured
in the same run), their ratio, and the target, which is either on the ratio
(``≥ 0.70x noop``) or on the value itself (``p99 < 50 ms``). A :class:`Phase` is one timed
stretch of work with the CPU every party spent in it, so the table says where time went.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TargetKind = Literal["ratio_min", "ratio_max", "value_max"]


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    limit: float

    def describe(self, unit: str) -> str:
        if self.kind == "ratio_min":
            return f"≥ {self.limit:g}x"
        if self.kind == "ratio_max":
            return f"≤ {self.limit:g}x"
        return f"< {self.limit:g} {unit}"

    def check(self, value: float | None, ratio: float | None) -> bool | None:
        if self.kind == "value_max":
            return None if value is None else value < self.limit
        if ratio is None:
            return None
        return ratio >= self.limit if self.kind == "ratio_min" else ratio <= self.limit


@dataclass
class Figure:
    scenario: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.check(self.value, self.ratio)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["passed"] = self.passed
        data["target"] = None if self.target is None else self.target.describe(self.unit)
        return data


@dataclass
class Phase:
    """One timed stretch of work and the CPU seconds each party spent in it."""

    scenario: str
    name: str
    ops: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    #: Wall seconds between the two CPU readings (a little longer than ``seconds``).
    cpu_window: float = 0.0
    #: WAL written between the two readings for the benchmark's database (records, and
    #: their bytes with full-page images): other databases' writes are not in it.
    wal_records: int = 0
    wal_bytes: int = 0

    @property
    def rate(self) -> float | None:
        return self.ops / self.seconds if self.seconds > 0 and self.ops else None

    def cpu_ms_per_op(self, party: str) -> float | None:
        spent = self.cpu.get(party)
        return None if spent is None or not self.ops else spent * 1000 / self.ops

    def wal_records_per_op(self) -> float | None:
        return self.wal_records / self.ops if self.ops else None

    def wal_bytes_per_op(self) -> float | None:
        return self.wal_bytes / self.ops if self.ops else None

    def cpu_share(self, party: str) -> float | None:
        """CPU of ``party`` as a fraction of one core over the phase."""
        spent = self.cpu.get(party)
        window = self.cpu_window or self.seconds
        return None if spent is None or window <= 0 else spent / window

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = self.rate
        return data


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    """The median (the mean of the middle two for an even count: two rounds → their mean)."""
    return statistics.median(values) if values else None
