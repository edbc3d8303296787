"""The moving parts the fault tests break: worker, beat and API processes, a receiver.

Every process runs in its own process group (so a ``kill -9`` takes the whole group, as an
orchestrator does), writes to a log file the failure messages quote, and runs at the default
settings: the claim lease, the sweep interval, the in-flight cap and the republish window
are the ones a user gets (the fault tests prove the recovery promise at those).
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
from datetime import datetime
from pathlib import Path
from typing import cast

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.processes import Process, Worker
from tests.services import free_port, wait_until
from webhooks.core.config import get_settings
from webhooks.core.db import new_session
from webhooks.models import Attempt, Delivery, Endpoint, Tenant

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

RECOVERY_SECONDS = 30.0
"""The promise: once a worker runs again, every open due delivery goes
out within this long of a worker being killed or the broker losing its messages."""

SLOW = 0.2
"""Seconds the receiver takes to answer: with 20 greenlets a burst lasts a few seconds at
least, however fast the machine, so the fault always strikes mid-burst."""

#: Figures measured by the fault tests, printed at the end of the run (see conftest.py).
FIGURES: dict[str, str] = {}


def report(name: str, figure: str) -> None:
    """Record a measured figure for the run's summary, and print it (seen with ``-s``)."""
    FIGURES[name] = figure
    print(f"[faults] {name}: {figure}")


def start_worker(env: Mapping[str, str], log: Path, concurrency: int = 20) -> Process:
    """``celery -A workers worker -P gevent`` on every queue, ready to consume."""
    return Worker(env, log, concurrency=concurrency)


def start_beat(env: Mapping[str, str], directory: Path) -> Process:
    """``celery -A workers beat``, sweeping at the default interval."""
    beat = Process(
        [sys.executable, "-m", "celery", "-A", "workers", "beat",
         "--schedule", str(directory / "beat-schedule"), "--loglevel", "INFO"],
        env,
        directory / "beat.log",
    )  # fmt: skip
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


# --- recovery after a fault -------------------------------------------------------------------


RECOVERY_CONCURRENCY = 100
"""Greenlets of the workers in the recovery tests. A gevent worker runs at most this many
tasks per turn of Celery's consumer loop (which waits up to 2 s for the broker between
turns), so it sets how fast a backlog drains: 100 is about 50 deliveries a second."""

ENDPOINTS = 25
"""Endpoints a burst is spread over. With the default in-flight cap (10 per endpoint) the
claims a killed worker left (4 per endpoint on average) and a new worker's (4 more) fit
under it, so what is measured is the recovery, not the cap's pacing of one endpoint."""


def spread_endpoints(session: Session, tenant: Tenant, receiver: Receiver) -> None:
    """:data:`ENDPOINTS` endpoints answering after :data:`SLOW`, one event type each."""
    for number in range(ENDPOINTS):
        url = receiver.on(f"/orders/{number}", answer(delay=SLOW))
        add_endpoint(session, tenant, url, event_types=[f"order.{number}"])


def enqueue_spread(number: int) -> str:
    """The ``number``-th event of a burst, for one of the :func:`spread_endpoints`."""
    from webhooks import enqueue_event

    return enqueue_event(f"order.{number % ENDPOINTS}", {"number": number}, tenant="acme")


QUICK = 0.05
"""Seconds the single endpoint of :func:`one_endpoint` takes to answer."""


def one_endpoint(session: Session, tenant: Tenant, receiver: Receiver) -> None:
    """One endpoint for every event, answering after :data:`QUICK`: a burst to it is paced
    by its in-flight cap alone."""
    add_endpoint(session, tenant, receiver.on("/orders", answer(delay=QUICK)))


def enqueue_one(number: int) -> str:
    """The ``number``-th event of a burst to :func:`one_endpoint`."""
    from webhooks import enqueue_event

    return enqueue_event("order.placed", {"number": number}, tenant="acme")


def database_now() -> datetime:
    """The database's clock: the one leases and due times are compared with."""
    from webhooks.delivery.state import db_now

    with new_session() as session:
        return cast(datetime, session.scalar(select(db_now(session))))


@dataclass(frozen=True)
class InFlight:
    """The claims alive at the moment of a fault: attempts that may be sent twice."""

    count: int
    #: Seconds from the fault until the last of those claims' leases ends (0 if none).
    lease_left: float
    #: The database's time of the fault.
    at: datetime | None = None


def in_flight() -> InFlight:
    """Read the live claims now (the database's rows, whoever holds them), on its clock."""
    from webhooks.delivery.state import db_now

    with new_session() as session:
        now = db_now(session)
        query = select(func.count(), func.max(Delivery.locked_until), now).where(
            Delivery.status.in_(("pending", "retrying")), Delivery.locked_until > now
        )
        count, last, at = session.execute(query).one()
    return InFlight(count, (last - at).total_seconds() if last is not None else 0.0, at)


def sends_after(event_ids: list[str], since: datetime) -> str:
    """When the attempts of these events started, in seconds after ``since`` (a database
    time; the attempts' start is the worker's clock, on the same host here): how many,
    the first, the median, the 90th percentile and the last."""
    query = (
        select(Attempt.started_at)
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .where(Delivery.event_id.in_(event_ids), Attempt.started_at >= since)
        .order_by(Attempt.started_at)
    )
    with new_session() as session:
        offsets = [(at - since).total_seconds() for at in session.scalars(query)]
    if not offsets:
        return "no attempts"
    median, ninety = (offsets[int(q * (len(offsets) - 1))] for q in (0.5, 0.9))
    return (
        f"{len(offsets)} attempts started {offsets[0]:.1f}s (first), {median:.1f}s "
        f"(median), {ninety:.1f}s (90%), {offsets[-1]:.1f}s (last) after"
    )


@dataclass(frozen=True)
class Recovery:
    """How one fault was recovered from: timings, duplicates, and the bound they must meet."""

    fault: str
    #: Seconds from the moment a worker could consume again until every delivery succeeded.
    seconds: float
    #: Deliveries open when the fault struck.
    open_at_fault: int
    in_flight: InFlight
    #: Webhook-ids the receiver got more than once, and the extra sends in all.
    duplicated: int
    extra_sends: int

    def check(self, *, back_after_fault: float, claims_died: bool) -> None:
        """Assert the promised bound; record the figures.

        Within :data:`RECOVERY_SECONDS` of a worker being back. A delivery a killed worker
        had claimed cannot be sent before its lease ends (the engine's ``CLAIM_DURATION``),
        so when claims died its bound is the later of that and the lease's end plus one
        sweep (and a few seconds to send it on a loaded VM): with a lease that ends within
        the promise the two are the same. Sends are repeated only for attempts that were in
        flight.
        """
        bound = RECOVERY_SECONDS
        if claims_died:
            sweep = get_settings().sweep_interval_seconds
            bound = max(bound, self.in_flight.lease_left - back_after_fault + sweep + 5)
        report(
            self.fault,
            f"{self.open_at_fault} deliveries open, {self.in_flight.count} in flight (leases "
            f"ending {self.in_flight.lease_left:.1f}s after the fault); all succeeded "
            f"{self.seconds:.1f}s after a worker was back (bound {bound:.0f}s); "
            f"{self.duplicated} webhook-ids sent twice or more, {self.extra_sends} extra sends",
        )
        assert self.seconds <= bound, f"{self.fault}: {self.seconds:.1f}s > {bound:.0f}s"
        assert self.extra_sends <= self.in_flight.count


def recovered(
    fault: str,
    receiver: Receiver,
    event_ids: list[str],
    *,
    open_at_fault: int,
    flying: InFlight,
    since_back: Callable[[], float],
) -> Recovery:
    """Wait until every delivery succeeded (a minute and a half at most), then count."""
    wait_until(all_succeeded(event_ids, len(event_ids)), 90, "every delivery to succeed")
    seconds = since_back()
    counts = receiver.per_webhook_id()
    assert set(counts) == set(event_ids), "an event never reached the receiver"
    assert statuses(event_ids) == {"succeeded": len(event_ids)}
    duplicated = [n for n in counts.values() if n > 1]
    return Recovery(
        fault, seconds, open_at_fault, flying, len(duplicated), sum(duplicated) - len(duplicated)
    )
