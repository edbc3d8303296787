"""The circumstances of a run: versions, machine, load — recorded next to every figure.

Figures from this machine drift by up to 50% within an hour and other work shares its two
cores, so a figure without its conditions (load average, the CPU other processes took) is
not worth keeping.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

_PACKAGES = (
    "celery",
    "kombu",
    "redis",
    "hiredis",
    "SQLAlchemy",
    "psycopg2-binary",
    "requests",
    "urllib3",
    "gevent",
    "psycogreen",
)

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (not idle, iowait)
_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has spent, all cores together."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:]
    return sum(int(fields[i]) for i in _BUSY_FIELDS) / _TICKS


def load_average() -> list[float]:
    with open("/proc/loadavg") as handle:
        return [float(x) for x in handle.read().split()[:3]]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, read only
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect(redis_url: str) -> dict[str, Any]:
    """Versions of everything measured and the machine it ran on."""
    import redis
    from sqlalchemy import text

    from webhooks.core.db import get_engine

    client = redis.Redis.from_url(redis_url)
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    with get_engine().connect() as connection:
        postgres_version = connection.execute(text("SHOW server_version")).scalar()
    return {
        "versions": {
            "python": platform.python_version(),
            **{package: _version(package) for package in _PACKAGES},
            "postgres": postgres_version,
            "redis-server": redis_version,
        },
        "machine": {
            "nproc": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "cpu_model": _cpu_model(),
            "kernel": platform.release(),
        },
        "git": _git(),
        "load_average_start": load_average(),
    }
