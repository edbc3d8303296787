"""``webhooks dev``: the whole service as one process tree, for trying it out.

The API, a worker and beat run as child processes (exactly the commands operators run), each
in its own process group, so that a terminal's Ctrl-C reaches this process alone and it stops
them in order (SIGTERM, then SIGKILL after a grace period), whatever moment the signal came.
This module starts them by module name and never imports ``api`` or ``workers``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from webhooks.admin.tokens import authenticate, create_token
from webhooks.core.config import Settings, load_settings
from webhooks.core.db import session_scope
from webhooks.core.errors import WebhooksError
from webhooks.ops import demo as demo_flow
from webhooks.ops import migrate

#: Brokers on which Celery can broadcast (remote control, task events for Flower).
_BROADCAST_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


class StartupFailed(WebhooksError):
    """A child process exited or did not become ready in time."""


class ChildExited(WebhooksError):
    """A child process died while the stack was serving."""


class PortInUse(WebhooksError):
    """A port the stack would listen on is taken."""


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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
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
                "api.problem_worker.ProblemWorker",  # gunicorn's own refusals as problem+json
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


def wait_ready(stack: Sequence[Child], url: str, stop: StopRequest, timeout: float = 60) -> None:
    """Wait until every child printed its ready line and ``url`` answers 200 (or ``stop``)."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        for child in stack:
            if child.exited():
                raise StartupFailed(f"{child.name} exited during start-up (see its output above)")
        if all(child.ready.is_set() for child in stack) and _answers(url):
            return
        if time.monotonic() > deadline:
            waiting = [child.name for child in stack if not child.ready.is_set()]
            raise StartupFailed(f"not ready after {timeout:.0f}s: {', '.join(waiting) or url}")
        stop.wait(0.1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


#: What ``--allow-local`` sets: plain HTTP, and receivers on this machine.
LOCAL_TARGETS = {
    "WEBHOOKS_ALLOW_HTTP": "1",
    "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
}


def dev_environment(settings: Settings, allow_local: bool) -> dict[str, str]:
    """The children's environment: the parent's, pinned to the settings resolved here.

    ``allow_local`` (``--allow-local``, implied by ``--demo``, whose receiver listens on
    127.0.0.1 over plain HTTP) allows exactly that, unless the operator set those variables.
    """
    env = dict(os.environ)
    env.setdefault("WEBHOOKS_VAR_DIR", str(settings.var_dir))
    env.setdefault("WEBHOOKS_DATABASE_URL", settings.database_url)
    env.setdefault("WEBHOOKS_BROKER_URL", settings.broker_url)
    env.setdefault("WEBHOOKS_SECRET_KEY", ",".join(settings.secret_keys))
    if allow_local:
        for name, value in LOCAL_TARGETS.items():
            env.setdefault(name, value)
    return env


def check_port_free(port: int, what: str) -> None:
    """Raise :class:`PortInUse` now, rather than let a child die of it during start-up."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(
                f"port {port} on 127.0.0.1 ({what}) is already in use: stop what listens "
                "there, or choose another port (webhooks dev --port N, PORT=N make run)"
            ) from None


def admin_token(settings: Settings) -> tuple[str, Path]:
    """The dev stack's admin token, kept in ``<var>/admin-token`` (mode 0600) and reused.

    One token per var directory rather than a new one per start: restarts leave nothing
    behind, and the token survives the banner scrolling away.
    """
    path = settings.var_dir / "admin-token"
    with session_scope() as session:
        if path.exists():
            saved = path.read_text().strip()
            token = authenticate(session, saved)
            if token is not None and token.is_admin:
                return saved, path
        _, plaintext = create_token(session, tenant=None)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(plaintext + "\n")
    return plaintext, path


class StopRequest:
    """Whether a stop was asked for: set by a signal handler, read by the main loop.

    A plain attribute rather than a :class:`threading.Event`: the handler runs in the main
    thread, between two bytecodes of whatever it interrupted, and ``Event.set`` takes the
    lock that ``Event.wait`` holds at moments in that same thread: a signal landing there
    would deadlock the stack instead of stopping it.
    """

    def __init__(self) -> None:
        self.requested = False

    def set(self) -> None:
        self.requested = True

    def is_set(self) -> bool:
        return self.requested

    def wait(self, timeout: float) -> bool:
        """Sleep until asked to stop or ``timeout`` seconds passed; whether it was asked."""
        deadline = time.monotonic() + timeout
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.05))
        return True


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM both just request the stop, for as long as the block runs.

    Handled alike and explicitly: a ``KeyboardInterrupt`` could strike between two
    statements of the start-up or of the shutdown and leave children running, and a shell
    starts a background job (``webhooks dev &``) with SIGINT ignored.
    """
    stop = StopRequest()
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in wanted}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def serve(stack: Sequence[Child], stop: StopRequest) -> None:
    """Block until ``stop`` is set; raise :class:`ChildExited` if a child dies first."""
    while not stop.wait(0.5):
        for child in stack:
            if child.exited():
                assert child.process is not None
                raise ChildExited(
                    f"{child.name} exited with status {child.process.returncode} "
                    "(see its output above); stopped the others"
                )


def run(
    settings: Settings,
    *,
    demo: bool,
    allow_local: bool,
    api_port: int,
    flower_port: int,
    echo: Callable[[str], None],
) -> None:
    """Migrate, start the stack, print how to use it, optionally run the demo, then serve.

    Every child is stopped on the way out, whatever ends the run (a signal at any moment, a
    child dying, a failed start-up or demo).
    """
    with stop_signals() as stop:
        env = dev_environment(settings, allow_local or demo)
        flower = supports_broadcast(settings.broker_url)
        check_port_free(api_port, "the API")
        if flower:
            check_port_free(flower_port, "Flower")
        migrate.upgrade(settings.database_url)
        token, token_file = admin_token(settings)
        stack = children(settings, api_port=api_port, flower_port=flower_port)
        base = f"http://127.0.0.1:{api_port}"
        try:
            for child in stack:
                if not stop.is_set():
                    child.start(env, echo)
            wait_ready(stack, f"{base}/healthz", stop)
            if not stop.is_set():
                flower_url = f"http://127.0.0.1:{flower_port}" if flower else None
                info = Banner(settings, load_settings(env), base, token, token_file, flower_url)
                echo(banner(info))
            if demo and not stop.is_set():
                result = demo_flow.run_demo(base, token, stopped=stop.is_set)
                if result is not None:
                    echo(demo_flow.describe(result, token_file))
            serve(stack, stop)
        finally:
            for child in reversed(stack):
                child.stop()
    echo("stopped")


@dataclass(frozen=True)
class Banner:
    """What the banner tells: where things are, and what the stack lets endpoints reach."""

    settings: Settings
    #: The settings the children run with (``--allow-local`` applied).
    served: Settings
    base: str
    token: str
    token_file: Path
    #: None when Flower cannot run (the embedded broker).
    flower_url: str | None


_NO_FLOWER = (
    "not started: the embedded broker carries no task events "
    "(set WEBHOOKS_BROKER_URL to a Redis or RabbitMQ URL to get it)"
)


def banner(info: Banner) -> str:
    """The lines printed once the stack is ready (one ``label  value`` row per line)."""
    rows = [
        ("API", f"{info.base}   (reference: {info.base}/docs, {info.base}/openapi.json)"),
        ("console", f"{info.base}/console   (sign in with a token, such as the one below)"),
        ("database", info.settings.database_url),
        ("broker", info.settings.broker_url),
        ("endpoints", _targets_line(info.served)),
        ("Flower", info.flower_url or _NO_FLOWER),
        ("admin token", info.token),
        ("", f"(also in {info.token_file}, mode 0600; use it as 'Authorization: Bearer <token>')"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(
        ["", "webhooks dev is running (Ctrl-C stops it)"]
        + [f"  {label:<{width}}  {value}" for label, value in rows]
        + [""]
    )


def _targets_line(settings: Settings) -> str:
    """Whether endpoints may use plain HTTP and private networks, and how to change it."""
    allowed = ", ".join(str(network) for network in settings.allowed_private_networks)
    if settings.allow_http and allowed:
        return f"http:// allowed; private networks allowed: {allowed}"
    scheme = "http:// allowed" if settings.allow_http else "https:// only"
    private = f"private networks allowed: {allowed}" if allowed else "no private addresses"
    return (
        f"{scheme}; {private} (restart with --allow-local, or set WEBHOOKS_ALLOW_HTTP=1 and "
        "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS=127.0.0.0/8,::1/128, for receivers on this machine)"
    )
