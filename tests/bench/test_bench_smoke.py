"""The benchmark suite at tiny size, so that it never rots.

The suite measures, it does not judge: this test only checks that ``python -m bench all``
runs every scenario to the end and prints its table, writing its JSON, Markdown and plot
into a temporary directory — never over ``docs/performance.md``. It runs on the test
suite's Postgres and Redis, in a database and Redis db of its own. Gevent pool only, tiny
sizes: about a minute on an idle 2-core machine, most of it Celery workers starting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICK = ("--quick", "--size", "100", "--pools", "gevent")
SCENARIOS = (
    "throughput",
    "slow",
    "latency",
    "hol",
    "enqueue",
    "tenants",
    "rss",
    "history",
    "partitions",
    "console",
    "schemas",
    "signing",
    "controls",
    "sweep",
)


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_bench_all_quick_runs_every_scenario_and_prints_the_table(tmp_path: Path) -> None:
    docs = REPO / "docs" / "performance.md"
    docs_before = docs.read_bytes() if docs.exists() else None
    env = {
        **os.environ,
        "BENCH_ADMIN_DATABASE_URL": os.environ["WEBHOOKS_TEST_ADMIN_DATABASE_URL"],
        "BENCH_REDIS_URL": os.environ["WEBHOOKS_TEST_REDIS_URL"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "bench", "all", *QUICK, "--output-dir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Figures (ratios are to baselines measured in this run)" in result.stdout
    assert "Where the CPU went" in result.stdout
    table = result.stdout.split("Figures (ratios", 1)[1]
    for scenario in SCENARIOS:
        assert f"\n{scenario} " in table, f"no {scenario} row in:\n{table}"
    assert "crashed" not in table

    (results,) = (tmp_path / "results").glob("*.json")
    document = json.loads(results.read_text())
    assert {figure["scenario"] for figure in document["figures"]} == set(SCENARIOS)
    assert document["versions"]["celery"]
    assert "<!-- generated below" in (tmp_path / "performance.md").read_text()
    assert (docs.read_bytes() if docs.exists() else None) == docs_before
