"""Fixtures of the fault tests, and the figures they measured at the end of the run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from tests.e2e.broker import flush
from tests.faults.harness import FIGURES, Receiver
from webhooks.admin.tenants import create_tenant
from webhooks.models import Tenant


@pytest.fixture
def worker_env(broker_url: str) -> Iterator[dict[str, str]]:
    """The environment of this test's processes, on an empty broker, emptied afterwards."""
    flush(broker_url)
    yield {**os.environ, "WEBHOOKS_BROKER_URL": broker_url}
    flush(broker_url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def tenant(session: Session) -> Tenant:
    made = create_tenant(session, "acme")
    session.commit()
    return made


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("fault tests: figures measured")
        for name, figure in FIGURES.items():
            terminalreporter.write_line(f"{name}: {figure}")
