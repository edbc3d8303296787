"""``webhooks dev``: the whole service as one process tree, for trying it out.

The API, a worker and beat run as child processes (exactly the commands operators run), each
in its own process group so that Ctrl-C stops the tree cleanly. This module starts them by
module name and never imports ``api`` or ``workers``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from webhooks.admin.tokens import create_token
from webhooks.core.config import Settings
from webhooks.core.db import session_scope
from webhooks.core.errors import WebhooksError
from webhooks.ops import demo as demo_flow
from webhooks.ops import migrate

#: Brokers on which Celery can broadcast (remote control, task events for Flower).
_BROADCAST_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


class StartupFailed(WebhooksError):
    """A child process exited or did not become ready in time."""


@dataclass
class Child:
    """One supervised process and the line that tells it is ready."""

    name: str
    args: list[str]
    ready_marker: str | None = None
    process: subprocess.Popen[str] | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def start(self, env: Mapping[str, str], echo: Callable[[str], None]) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed command lines
            self.args,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        if self.ready_marker is None:
            self.ready.set()
        assert self.process.stdout is not None
        threading.Thread(target=self._pump, args=(self.process.stdout, echo), daemon=True).start()

    def _pump(self, stream: IO[str], echo: Callable[[str], None]) -> None:
        for line in stream:
            if self.ready_marker and self.ready_marker in line:
                self.ready.set()
            echo(f"[{self.name}] {line.rstrip()}")

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the child's whole group, then SIGKILL what is left after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def supports_broadcast(broker_url: str) -> bool:
    """Whether the broker carries Celery's broadcast messages (Flower needs them)."""
    return broker_url.split(":", 1)[0].split("+", 1)[0] in _BROADCAST_SCHEMES


def children(settings: Settings, *, api_port: int, flower_port: int) -> list[Child]:
    """The processes of the dev stack, on the configured database and broker."""
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "workers"]
    stack = [
        Child(
            "api",
            [
                python,
                "-m",
                "gunicorn",
                "api:create_app()",
                "--bind",
                f"127.0.0.1:{api_port}",
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                "--access-logfile",
                "-",
            ],
            ready_marker="Booting worker",
        ),
        Child(
            "worker",
            [
                *celery,
                "worker",
                "-P",
                "threads",
                "-c",
                "10",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            ready_marker="ready.",
        ),
        Child(
            "beat",
            [
                *celery,
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(settings.var_dir / "celerybeat-schedule"),
            ],
            ready_marker="beat: Starting",
        ),
    ]
    if supports_broadcast(settings.broker_url):
        stack.append(Child("flower", [*celery, "flower", f"--port={flower_port}"]))
    return stack


def wait_ready(stack: Sequence[Child], url: str, timeout: float = 60) -> None:
    """Wait until every child printed its ready line and ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        for child in stack:
            if child.exited():
                raise StartupFailed(f"{child.name} exited during start-up (see its output above)")
        if all(child.ready.is_set() for child in stack) and _answers(url):
            return
        if time.monotonic() > deadline:
            waiting = [child.name for child in stack if not child.ready.is_set()]
            raise StartupFailed(f"not ready after {timeout:.0f}s: {', '.join(waiting) or url}")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def dev_environment(settings: Settings, demo: bool) -> dict[str, str]:
    """The children's environment: the parent's, pinned to the settings resolved here.

    The demo receiver listens on 127.0.0.1 over plain HTTP, so ``--demo`` allows exactly
    that unless the operator chose otherwise.
    """
    env = dict(os.environ)
    env.setdefault("WEBHOOKS_VAR_DIR", str(settings.var_dir))
    env.setdefault("WEBHOOKS_DATABASE_URL", settings.database_url)
    env.setdefault("WEBHOOKS_BROKER_URL", settings.broker_url)
    env.setdefault("WEBHOOKS_SECRET_KEY", ",".join(settings.secret_keys))
    if demo:
        env.setdefault("WEBHOOKS_ALLOW_HTTP", "1")
        env.setdefault("WEBHOOKS_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8,::1/128")
    return env


def serve_until_interrupted(stack: Sequence[Child]) -> None:
    """Block until Ctrl-C / SIGTERM or until a child dies; then stop every child."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and not any(child.exited() for child in stack):
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for child in reversed(stack):
            child.stop()


def run(
    settings: Settings,
    *,
    demo: bool,
    api_port: int,
    flower_port: int,
    echo: Callable[[str], None],
) -> None:
    """Migrate, start the stack, print how to use it, optionally run the demo, then serve."""
    migrate.upgrade(settings.database_url)
    with session_scope() as session:
        _, token = create_token(session, tenant=None)
    stack = children(settings, api_port=api_port, flower_port=flower_port)
    env = dev_environment(settings, demo)
    base = f"http://127.0.0.1:{api_port}"
    try:
        for child in stack:
            child.start(env, echo)
        wait_ready(stack, f"{base}/healthz")
        echo(_banner(settings, base, token, flower_port, stack))
        if demo:
            echo(demo_flow.describe(demo_flow.run_demo(base, token)))
    except BaseException:
        for child in reversed(stack):
            child.stop()
        raise
    serve_until_interrupted(stack)
    echo("stopped")


def _banner(
    settings: Settings, base: str, token: str, flower_port: int, stack: Sequence[Child]
) -> str:
    lines = [
        "",
        "webhooks dev is running (Ctrl-C stops it)",
        f"  API          {base}   (OpenAPI: {base}/openapi.json)",
        f"  console      {base}/console   (sign in with the admin token below)",
        f"  database     {settings.database_url}",
        f"  broker       {settings.broker_url}",
    ]
    if any(child.name == "flower" for child in stack):
        lines.append(f"  Flower       http://127.0.0.1:{flower_port}")
    lines += [
        "  admin token  (shown once; use it as 'Authorization: Bearer <token>')",
        f"  {token}",
        "",
    ]
    return "\n".join(lines)
