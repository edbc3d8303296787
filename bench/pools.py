"""Celery worker processes for the benchmarks, started and killed as process groups.

Every worker is started the way an operator starts one (``python -m celery -A <app> worker
-P <pool> -c <n> --without-mingle --without-gossip``, as in the Procfile) but listening only
to an idle queue of its own. When a phase starts, the harness tells it to consume the real
queue (``add_consumer``, a remote-control broadcast) and when the phase ends to stop
(``cancel_consumer``). So a phase's clock starts with a warm worker (imports done,
connections open) and a backlog already in the broker: what is timed is the worker draining
it, not Python starting up, and not a producer competing with the worker for the two cores.

The engine's worker is ``-A workers``; the baselines' is ``-A bench.baseline_tasks``, which
carries the engine's Celery configuration (same broker, serializer, acks, prefetch, events).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from bench import procstat

ENGINE_APP = "workers"
BASELINE_APP = "bench.baseline_tasks"


def control_app(broker_url: str) -> Celery:
    """A bare Celery app used only to send remote-control commands (ping, add_consumer)."""
    return Celery("bench-control", broker=broker_url, set_as_current=False)


@dataclass
class Worker:
    """One ``celery worker`` process group."""

    app: str
    pool: str
    concurrency: int
    name: str
    control: Celery
    loglevel: str = "WARNING"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: str = ""

    @property
    def node(self) -> str:
        return f"{self.name}@bench"

    @property
    def idle_queue(self) -> str:
        return f"bench_idle_{self.name}"

    def start(self, log_dir: str) -> None:
        self.log_path = os.path.join(log_dir, f"{self.name}.log")
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app,
            "worker",
            "-P",
            self.pool,
            "-c",
            str(self.concurrency),
            "-Q",
            self.idle_queue,
            "-n",
            self.node,
            "--without-mingle",
            "--without-gossip",
            "-l",
            self.loglevel,
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed command, our own modules
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the worker answers a ping (its consumer is running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited; see {self.log_path}")
            replies = self.control.control.ping(destination=[self.node], timeout=0.5)
            if replies:
                return
        raise TimeoutError(f"worker {self.name} not ready after {timeout}s; see {self.log_path}")

    def _command(self, method: str, queue: str) -> None:
        for _ in range(5):
            replies: list[Any] = getattr(self.control.control, method)(
                queue, destination=[self.node], reply=True, timeout=5
            )
            if replies:
                return
        raise RuntimeError(f"worker {self.name} did not answer {method}({queue})")

    def consume(self, queue: str) -> None:
        self._command("add_consumer", queue)

    def stop_consuming(self, queue: str) -> None:
        self._command("cancel_consumer", queue)

    @property
    def pgid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> procstat.CpuSnapshot:
        return procstat.CpuSnapshot.of(procstat.group_pids(self.pgid))

    def rss(self) -> int:
        return procstat.group_rss(self.pgid)

    def kill(self) -> None:
        """Kill the whole process group at once (SIGKILL).

        A warm shutdown (TERM) takes seconds and even a cold one (QUIT) a couple under
        gevent; when a scenario kills its workers every measured message has been handled
        and the broker db is flushed next, so there is nothing to wait for, and a smoke run
        stays short. Prefork children go with their parent: they share its group.
        """
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def start_workers(workers: list[Worker], log_dir: str) -> None:
    """Start several workers at once (their imports overlap) and wait for all of them."""
    for worker in workers:
        worker.start(log_dir)
    try:
        for worker in workers:
            worker.wait_ready()
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
