"""Printing and recording a run: the table on stdout, JSON, docs/performance.md, a PNG.

``docs/performance.md`` is regenerated below a marker line and kept above it: the prose
there (how to read the figures, the profile notes) is written by people and survives runs.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stats import Figure, Phase

MARKER = "<!-- generated below: `python -m bench all` rewrites everything after this line -->"
PARTIES = ("worker", "receiver", "redis", "postgres", "harness", "machine")


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _result(figure: Figure) -> str:
    if figure.value is None:
        return "skip" if figure.note else "n/a"
    return {True: "PASS", False: "FAIL", None: "-"}[figure.passed]


def figure_rows(figures: list[Figure]) -> list[list[str]]:
    rows = []
    for figure in figures:
        baseline = (
            f"{_number(figure.baseline)} ({figure.baseline_name})" if figure.baseline_name else "-"
        )
        ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else "-"
        value = (
            f"{_number(figure.value)} {figure.unit}"
            if figure.value is not None
            else figure.note or "n/a"
        )
        rows.append(
            [
                figure.scenario,
                figure.name,
                value,
                baseline,
                ratio,
                figure.target.describe(figure.unit) if figure.target else "-",
                _result(figure),
            ]
        )
    return rows


FIGURE_HEADER = ["scenario", "figure", "value", "baseline (same run)", "ratio", "target", "result"]
PHASE_HEADER = [
    "scenario",
    "phase",
    "ops",
    "seconds",
    "ops/s",
    "worker CPU ms/op",
    "receiver % core",
    "redis % core",
    "postgres % core",
    "harness % core",
    "whole machine % core",
]


def _share(phase: Phase, party: str) -> str:
    share = phase.cpu_share(party)
    return "-" if share is None else f"{share * 100:.0f}%"


def phase_rows(phases: list[Phase]) -> list[list[str]]:
    return [
        [
            phase.scenario,
            phase.name,
            str(phase.ops),
            f"{phase.seconds:.1f}",
            _number(phase.rate),
            _number(phase.cpu_ms_per_op("worker")) if phase.cpu.get("worker") else "-",
            *(_share(phase, party) for party in PARTIES[1:]),
        ]
        for phase in phases
    ]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, ["-" * w for w in widths], *rows]
    ]
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return (
            "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"
        )

    return "\n".join([line(header), line(["---"] * len(header)), *(line(row) for row in rows)])


def print_tables(figures: list[Figure], phases: list[Phase]) -> None:
    print()
    print("Figures (ratios are to baselines measured in this run)")
    print(text_table(FIGURE_HEADER, figure_rows(figures)))
    print()
    print("Where the CPU went (receiver/redis/postgres/harness/machine: % of one core)")
    print(text_table(PHASE_HEADER, phase_rows(phases)))
    print()


def results_document(
    command: str,
    options: dict[str, Any],
    run_meta: dict[str, Any],
    figures: list[Figure],
    phases: list[Phase],
    series: dict[str, Any],
) -> dict[str, Any]:
    return {
        "command": command,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": options,
        **run_meta,
        "figures": [figure.as_dict() for figure in figures],
        "phases": [phase.as_dict() for phase in phases],
        "series": series,
    }


def write_json(document: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    path = directory / f"{stamp}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


_DEFAULT_PROSE = """\
# Performance

Figures from the benchmark suite in `bench/`. Every figure is compared as a ratio to
baselines measured in the same run, because this 2-core machine's speed drifts by up to 50%
within an hour; figures from different runs are not comparable.

## How to run

    python -m bench all                 # everything, full size (an hour or more here)
    python -m bench all --quick         # tiny sizes, a few minutes (the smoke test: gevent only)
    python -m bench throughput latency  # some scenarios
    python -m bench --list              # scenarios and options

Useful options: `--size N` (deliveries per throughput phase; the other sizes follow),
`--rounds R` (interleaved repetitions, medians reported), `--pools gevent,prefork`,
`--gevent-concurrency 1000`, `--prefork-concurrency 2`, `--rate R` (latency offered rate),
`--output-dir DIR` / `--no-write`.

The run provisions everything itself on the local Postgres and Redis: a database
`bench_<pid>` (migrated, dropped at the end), Redis db 13 (flushed per scenario), its own
receiver, and Celery workers started per scenario and killed with their process groups.

## What is measured

- **throughput**: N deliveries (20,000) are preloaded, then a warm worker is told to consume
  and the clock runs until the last one is handled (receiver got it and its row is
  committed). Engine (`celery -A workers worker`) vs (1) a no-op Celery task, (2) a naive
  task (HMAC-sign, `requests.post`, insert one attempt row, one commit) — both in
  `bench/baseline_tasks.py`, on the engine's own Celery configuration — and (3) a plain loop
  with a keep-alive `requests.Session` and the same row, no Celery (the hardware's ceiling
  for this work). Gevent `-c 1000` (the Procfile's worker), prefork `-c 2`, and one gevent
  process per core (the Procfile run once per core), each against the baselines at the same
  topology.
- **slow**: 200 endpoints answering in 100 ms and in 1 s against a fast receiver, the engine
  and the naive task, per pool: the slow rates as ratios to the same worker's fast one.
- **latency**: enqueue → receipt at the receiver, p50/p95/p99, at half the maximum rate
  measured above (the naive task at half of its own maximum, as baseline).
- **hol**: 5 of 50 endpoints never answer (past their timeout) while the other 45 receive
  2,000 events: the healthy endpoints' latency, engine vs naive task.
- **enqueue**: `enqueue_event` p50/p99 and events/s from 1 and 4 producer processes with
  1 and 3 matching endpoints, against one bare `apply_async` + one single-row commit
  measured in the same processes, in alternating phases.
- **tenants**: `enqueue_event` among 10,000 endpoints of 1,000 tenants (type wildcards)
  against a database with one endpoint, in alternating blocks.
- **rss**: the engine worker's RSS over 5 x N deliveries (100,000).
- **history**: 1,000,000 attempts and 300,000 deliveries seeded with `generate_series`;
  deliveries and run-history pages (first and deep) p95 in-process and through the API, their
  query plans, and the retention purge beside a thread of live inserts (its latency).

## Profile notes

(Written by hand; kept by the generator.)

"""


def write_docs(
    directory: Path,
    command: str,
    run_meta: dict[str, Any],
    figures: list[Figure],
    phases: list[Phase],
    json_path: Path | None,
    plot_name: str | None,
) -> Path:
    path = directory / "performance.md"
    prose = path.read_text() if path.exists() else _DEFAULT_PROSE
    if MARKER in prose:
        prose = prose.split(MARKER, 1)[0]
    prose = prose.rstrip() + "\n\n"
    machine = run_meta["machine"]
    versions = run_meta["versions"]
    lines = [
        MARKER,
        "",
        "## Latest recorded run",
        "",
        f"- Command: `{command}`",
        f"- Finished: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit {run_meta['git']}",
        f"- Machine: {machine['nproc']} cores ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, Linux {machine['kernel']}",
        f"- Load average at start / end: {run_meta['load_average_start']} / "
        f"{run_meta.get('load_average_end')}",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
    ]
    if json_path is not None:
        lines.append(f"- Raw figures: `{json_path.as_posix()}`")
    if run_meta.get("caveat"):
        lines += ["", f"> {run_meta['caveat']}"]
    lines += [
        "",
        "### Figures",
        "",
        markdown_table(FIGURE_HEADER, figure_rows(figures)),
        "",
        "### Where the CPU went",
        "",
        "CPU of each party during each phase, as a share of one core (the machine has "
        f"{machine['nproc']}); Redis and Postgres are whole servers, shared with anything else "
        "running, and *whole machine* is every process together.",
        "",
        markdown_table(PHASE_HEADER, phase_rows(phases)),
        "",
    ]
    if plot_name:
        lines += [f"![throughput and latency against the baselines]({plot_name})", ""]
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(prose + "\n".join(lines))
    return path
