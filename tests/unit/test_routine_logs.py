"""Celery's routine per-task and per-tick lines are DEBUG; everything else is left alone."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from webhooks.core.config import Settings
from webhooks.core.logs import configure_logging

SETTINGS = Settings(database_url="sqlite://", broker_url="memory://", secret_keys=())


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(SETTINGS, logging.INFO, stream)
    yield stream
    configure_logging(SETTINGS, logging.WARNING)


def _routine() -> None:
    context = {"name": "webhooks.deliver", "id": "1", "runtime": 0.01, "return_value": None}
    logging.getLogger("celery.worker.strategy").info("Task %(name)s[%(id)s] received", context)
    logging.getLogger("celery.app.trace").info(
        "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", context
    )
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "sweep", "x")


def test_routine_lines_are_hidden_at_info(output: io.StringIO) -> None:
    _routine()
    logging.getLogger("celery.beat").info("beat: Starting...")
    logging.getLogger("celery.app.trace").error("Task %s raised", "webhooks.deliver")
    logging.getLogger("webhooks.delivery").info("attempt=1 delivery_id=dlv_1 succeeded")
    lines = output.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "INFO [celery.beat] beat: Starting...",
        "ERROR [celery.app.trace] Task webhooks.deliver raised",
        "INFO [webhooks.delivery] attempt=1 delivery_id=dlv_1 succeeded",
    ]


def test_routine_lines_show_at_debug(output: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    _routine()
    lines = output.getvalue().splitlines()
    assert len(lines) == 3 and all(" DEBUG [celery." in line for line in lines)
    assert "succeeded in 0.01s" in lines[1]
