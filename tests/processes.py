"""Real processes for the end-to-end tests: Celery workers (and anything else) in their own
process groups, each writing to a log file that failure messages quote.

A process group per child lets a test ``kill -9`` a worker and its pool children at once, as
an orchestrator does, and lets the fixtures stop everything they started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.services import wait_until

ROOT = Path(__file__).resolve().parents[1]

#: Every queue, as a plain ``celery -A workers worker`` consumes them.
QUEUES = "deliveries,retries,dead_letter,sweep"


class Process:
    """A command in its own process group, output to a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        #: Where a server process answers, when it is one.
        self.url = ""
        self._output = log.open("w")
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(env),
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.log.name} exited:\n{self.tail()}")

    def wait_for_output(self, marker: str, timeout: float, what: str) -> None:
        """Wait until the log shows ``marker``; fail at once if the process died."""

        def printed() -> bool:
            self.check_alive()
            return marker in self.log.read_text(errors="replace")

        wait_until(printed, timeout, what)

    def kill(self) -> None:
        """``kill -9`` the whole process group, and reap it."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(10)
        self._output.close()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the group (a warm shutdown), SIGKILL if it lingers."""
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(10)
        self._output.close()


class Worker(Process):
    """``celery -A workers worker -P gevent`` on every queue."""

    def __init__(
        self,
        env: Mapping[str, str],
        log: Path,
        *,
        concurrency: int = 20,
        wait: bool = True,
    ) -> None:
        args = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-P", "gevent",
                "-c", str(concurrency), "--without-mingle", "--without-gossip",
                "--without-heartbeat", "-Q", QUEUES, "--loglevel", "INFO"]  # fmt: skip
        super().__init__(args, env, log)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        self.wait_for_output(" ready.", 60, f"the Celery worker ({self.log.name}) to start")
