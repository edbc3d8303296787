"""Can this process reach its database and its broker, quickly? For ``/readyz`` and ``/metrics``.

Every check runs in a small pool of its own with a deadline: a probe must answer within its
budget even when a dependency hangs (a SYN that is never answered, a server that accepts and
says nothing), because an orchestrator that gets no answer at all kills the process rather
than taking it out of rotation. A check that overruns keeps its thread until its own socket
timeout ends it; the pool is small, so a dead dependency cannot pile up threads either.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from sqlalchemy import text

from webhooks.broker.inspection import broker_connection
from webhooks.core.db import get_engine

T = TypeVar("T")

BUDGET = 1.0
"""Seconds each dependency has to answer."""

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhooks-probe")


class CheckFailed(Exception):
    """A dependency did not answer in time, or answered with an error (the message says)."""


def bounded(check: Callable[[], T], budget: float = BUDGET) -> T:
    """Run ``check`` with at most ``budget`` seconds of waiting; raise :class:`CheckFailed`."""
    future = _POOL.submit(check)
    try:
        return future.result(timeout=budget)
    except FutureTimeout:
        future.cancel()  # only helps if it has not started: the pool was busy
        raise CheckFailed(f"no answer within {budget:g}s") from None
    except Exception as exc:
        raise CheckFailed(_reason(exc)) from exc


def ping_database() -> None:
    """``SELECT 1`` on a pooled connection of the configured database."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def ping_broker() -> None:
    """Open a connection to the broker (for Redis: connect and PING) and close it."""
    with broker_connection() as connection:
        connection.ensure_connection(max_retries=0, timeout=BUDGET)


def check_all() -> dict[str, str]:
    """``{"database": "ok" | reason, "broker": "ok" | reason}``, both checked concurrently."""
    checks = {"database": ping_database, "broker": ping_broker}
    futures = {name: _POOL.submit(check) for name, check in checks.items()}
    wait(futures.values(), timeout=BUDGET)  # one budget for both: they run side by side
    results: dict[str, str] = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()
            results[name] = f"no answer within {BUDGET:g}s"
        elif future.exception() is not None:
            results[name] = _reason(future.exception())
        else:
            results[name] = "ok"
    return results


def _reason(exc: BaseException | None) -> str:
    """One short line: what went wrong, never a URL with a password (kombu does not print it)."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
