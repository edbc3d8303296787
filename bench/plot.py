"""The PNG next to docs/performance.md: throughput and latency against the baselines.

matplotlib is an optional extra (``pip install -e '.[bench]'``); without it the run still
completes and says that no plot was drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw(series: dict[str, Any], path: Path) -> bool:
    """Draw what the run measured into ``path``; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed (pip install -e '.[bench]'): no plot drawn")
        return False

    panels = [key for key in ("throughput", "latency", "hol", "rss") if series.get(key)]
    if not panels:
        return False
    columns = min(2, len(panels))
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 4.4 * rows), squeeze=False)
    flat = [axis for row in axes for axis in row]
    for axis, key in zip(flat, panels, strict=False):
        if key == "throughput":
            _throughput(axis, series[key])
        elif key == "rss":
            _rss(axis, series[key])
        else:
            _latency(axis, series[key], key)
    for axis in flat[len(panels) :]:
        axis.set_visible(False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _throughput(axis: Any, bars: dict[str, float | None]) -> None:
    labels = list(bars)
    values = [bars[label] or 0.0 for label in labels]
    colours = [
        "tab:green"
        if label.startswith("engine")
        else "tab:gray"
        if "no-op" in label
        else "tab:orange"
        for label in labels
    ]
    axis.bar(range(len(labels)), values, color=colours)
    axis.set_xticks(range(len(labels)), labels, fontsize=8)
    axis.set_ylabel("deliveries (tasks) per second")
    axis.set_title("Throughput (same run)")
    for index, value in enumerate(values):
        axis.annotate(f"{value:.0f}", (index, value), ha="center", va="bottom", fontsize=8)


def _latency(axis: Any, groups: dict[str, dict[str, float | None]], key: str) -> None:
    labels = list(groups)
    percentiles = ("p50", "p95", "p99")
    width = 0.8 / len(percentiles)
    for offset, pct in enumerate(percentiles):
        values = [groups[label].get(pct) or 0.0 for label in labels]
        positions = [i + (offset - 1) * width for i in range(len(labels))]
        axis.bar(positions, values, width, label=pct)
    axis.set_xticks(range(len(labels)), labels, fontsize=8)
    # The targets: p50 < 10 ms and p99 < 50 ms; healthy p99 < 1 s with hanging peers.
    for limit in (10, 50) if key == "latency" else (1000,):
        axis.axhline(limit, color="tab:red", linewidth=0.8, linestyle="--")
    axis.set_yscale("log")
    axis.set_ylabel("ms, enqueue → receipt (log)")
    axis.set_title(
        "Latency at half max rate" if key == "latency" else "Healthy endpoints, 5 of 50 hanging"
    )
    axis.legend(fontsize=8)


def _rss(axis: Any, samples: list[list[float]]) -> None:
    axis.plot([s[0] for s in samples], [s[1] for s in samples])
    axis.set_xlabel("deliveries received")
    axis.set_ylabel("worker RSS, MiB")
    axis.set_title("Worker memory over a long run")
    axis.set_ylim(bottom=0)
