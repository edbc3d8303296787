"""The moving parts the fault tests break: worker, beat and API processes, a receiver.

Every process runs in its own process group (so a ``kill -9`` takes the whole group, as an
orchestrator does), writes to a log file the failure messages quote, and is started through
:mod:`tests.faults.launch` with short recovery windows (:data:`WINDOWS`).
"""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.processes import Process, Worker
from tests.services import free_port, wait_until
from webhooks.core.db import new_session
from webhooks.models import Attempt, Delivery, Endpoint, Tenant

LAUNCHER = "tests.faults.launch"

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

CLAIM_SECONDS = 8
"""The claim lease in the tests (45 s in production): above every test endpoint's timeout."""
REPUBLISH_AFTER_SECONDS = 10
"""The sweeper's republish window in the tests (180 s in production).

Short enough to keep the tests short, long enough that a few-second backlog is not
published again on every sweep (each republished message is harmless but costs a claim).
"""
ENDPOINT_CONCURRENCY = 100
"""``WEBHOOKS_ENDPOINT_CONCURRENCY`` in the tests (10 by default), above the worker's 20
greenlets: a burst to one endpoint is then not deferred by the in-flight cap, whose effect
after a crash docs/reliability.md describes on its own."""
SWEEP_INTERVAL_SECONDS = 1
"""Beat's sweep interval in the tests (5 s in production)."""

WINDOWS = {
    "FAULTS_CLAIM_SECONDS": str(CLAIM_SECONDS),
    "WEBHOOKS_REPUBLISH_AFTER_SECONDS": str(REPUBLISH_AFTER_SECONDS),
    "WEBHOOKS_SWEEP_INTERVAL_SECONDS": str(SWEEP_INTERVAL_SECONDS),
}

SLOW = 0.2
"""Seconds the receiver takes to answer: with 20 greenlets a burst lasts a few seconds at
least, however fast the machine, so the fault always strikes mid-burst."""

#: Figures measured by the fault tests, printed at the end of the run (see conftest.py).
FIGURES: dict[str, str] = {}


def report(name: str, figure: str) -> None:
    """Record a measured figure for the run's summary, and print it (seen with ``-s``)."""
    FIGURES[name] = figure
    print(f"[faults] {name}: {figure}")


def _launch(*celery_args: str) -> list[str]:
    return [sys.executable, "-m", LAUNCHER, "-A", "workers", *celery_args]


def start_worker(env: Mapping[str, str], log: Path, concurrency: int = 20) -> Process:
    """``celery -A workers worker -P gevent`` on every queue, ready to consume."""
    return Worker(
        {"WEBHOOKS_ENDPOINT_CONCURRENCY": str(ENDPOINT_CONCURRENCY), **env, **WINDOWS},
        log,
        concurrency=concurrency,
        module=LAUNCHER,
    )


def start_beat(env: Mapping[str, str], directory: Path) -> Process:
    """``celery -A workers beat``, sweeping every :data:`SWEEP_INTERVAL_SECONDS`."""
    beat = Process(
        _launch("beat", "--schedule", str(directory / "beat-schedule"), "--loglevel", "INFO"),
        {**env, **WINDOWS},
        directory / "beat.log",
    )

    beat.wait_for_output("beat: Starting", 30, "celery beat to start")
    return beat


def start_api(env: Mapping[str, str], log: Path, workers: int = 2, threads: int = 8) -> Process:
    """``gunicorn 'api:create_app()'`` (gthread, as the Procfile runs it) on a free port."""
    port = free_port()
    api = Process(
        [sys.executable, "-m", "gunicorn", "api:create_app()", "--bind", f"127.0.0.1:{port}",
         "--worker-class", "api.problem_worker.ProblemWorker", "--workers", str(workers),
         "--threads", str(threads),
         "--timeout", "60"],
        env,
        log,
    )  # fmt: skip
    api.url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        api.check_alive()
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(answers, 60, "gunicorn to answer")
    return api


# --- the receiver -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


#: What the receiver does with a request on a path: write to the socket (or not), then close.
Behaviour = Callable[[socket.socket, Request, threading.Event], None]


def answer(status: int = 200, body: bytes = b"ok", delay: float = 0.0) -> Behaviour:
    """A well-formed answer, after ``delay`` seconds."""

    def behave(conn: socket.socket, _: Request, stopping: threading.Event) -> None:
        if delay:
            stopping.wait(delay)
        conn.sendall(_head(status, len(body)) + body)

    return behave


def hostile_bytes(conn: socket.socket, _: Request, __: threading.Event) -> None:
    """A 200 whose headers and body hold NUL, bytes that are not UTF-8, and bulk."""
    body = b"\x00\xff\xfe not utf-8 \xc3"
    head = (
        b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nX-Latin: \xff\xfe\r\n"
        + b"".join(f"X-Many-{n}: v\r\n".encode() for n in range(80))
        + b"X-Huge: "
        + b"h" * 60_000
        + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    )
    conn.sendall(head + body)


def _head(status: int, length: int, *extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {length}", "Connection: close", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Receiver:
    """A raw HTTP/1.1 server on 127.0.0.1 whose behaviour is chosen per path.

    Raw, so that it can misbehave in ways an HTTP library refuses to (garbage bytes, a
    connection closed halfway through a response). It records every request it reads.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                receiver._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, behaviour: Behaviour) -> str:
        """Answer requests on ``path`` with ``behaviour``; returns the URL."""
        self._behaviours[path] = behaviour
        return self.url(path)

    def received(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def count(self, path: str | None = None) -> int:
        return len(self.received(path))

    def per_webhook_id(self, path: str | None = None) -> Counter[str]:
        return Counter(r.webhook_id for r in self.received(path))

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            behaviour = self._behaviours.get(request.path, answer(404, b"no such path"))
            behaviour(conn, request, self.stopping)
        except OSError:
            pass  # the client gave up first (its timeout, a capped read): that is the point
        finally:
            conn.close()


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    path = request_line.split(" ")[1] if " " in request_line else "/"
    return Request(path, headers, body)


# --- the database -----------------------------------------------------------------------------


def add_endpoint(session: Session, tenant: Tenant, url: str, **fields: object) -> str:
    """An endpoint written directly (no PING, no URL check: a receiver gone bad later)."""
    made = Endpoint(tenant_id=tenant.id, url=url, secret=SECRET, **fields)
    session.add(made)
    session.commit()
    return made.id


def statuses(event_ids: Iterable[str] | None = None) -> Counter[str]:
    """How many deliveries are in each state (of these events' deliveries, or of all)."""
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    if event_ids is not None:
        query = query.where(Delivery.event_id.in_(list(event_ids)))
    with new_session() as session:
        return Counter({str(status): count for status, count in session.execute(query)})


def attempts_of(event_id: str) -> list[Attempt]:
    query = (
        select(Attempt)
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .where(Delivery.event_id == event_id)
        .order_by(Attempt.attempt)
    )
    with new_session() as session:
        return list(session.scalars(query))


@dataclass
class Burst:
    """Events enqueued from a background thread, as a producer would."""

    enqueue: Callable[[int], str]
    count: int
    event_ids: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for number in range(self.count):
            try:
                self.event_ids.append(self.enqueue(number))
            except BaseException as exc:  # reported by join()
                self.errors.append(exc)
                return

    def join(self, timeout: float = 60) -> list[str]:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the burst did not finish within {timeout}s")
        if self.errors:
            raise self.errors[0]
        return self.event_ids


def all_succeeded(event_ids: list[str], expected: int) -> Callable[[], bool]:
    """A check for :func:`wait_until`, querying at most twice a second (the CPUs are shared)."""
    last = [0.0]

    def check() -> bool:
        if time.monotonic() - last[0] < 0.5:
            return False
        last[0] = time.monotonic()
        return statuses(event_ids)["succeeded"] == expected

    return check


def stopwatch() -> Callable[[], float]:
    started = time.monotonic()
    return lambda: time.monotonic() - started
