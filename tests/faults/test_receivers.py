"""Receivers that misbehave, and task messages that come more than once.

Each misbehaviour is an ordinary failed attempt, recorded with its error class, in bounded
time and memory, while the same worker keeps delivering to a healthy endpoint. However many
copies of a delivery's task arrive, and however concurrently, there is one attempt sequence.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.e2e.broker import queued
from tests.faults.harness import (
    Behaviour,
    Process,
    Receiver,
    Request,
    add_endpoint,
    all_succeeded,
    answer,
    attempts_of,
    report,
    start_worker,
    statuses,
    stopwatch,
)
from tests.services import wait_until
from webhooks import enqueue_event
from webhooks.broker import publishing as broker
from webhooks.core.db import new_session
from webhooks.delivery import engine as delivery
from webhooks.models import Delivery, Tenant
from webhooks.outbound.client_tls import ClientCertificate
from webhooks.outbound.http import MAX_BODY_BYTES
from webhooks.outbound.outcome import Outcome

pytestmark = pytest.mark.e2e

TEN_MB = 10 * 1024 * 1024
HEALTHY = 50
METADATA = "http://169.254.169.254/latest/meta-data/"


def close_mid_response(conn: socket.socket, _: Request, __: threading.Event) -> None:
    """Promise 1000 bytes, send 7, hang up."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")


def garbage(conn: socket.socket, _: Request, __: threading.Event) -> None:
    conn.sendall(b"\x16\x03\x01\x00\xa5\xff\xfe not http at all \x00\r\n\r\n")


def huge(conn: socket.socket, request: Request, stopping: threading.Event) -> None:
    """A 500 with a 10 MB body, streamed until the client stops reading."""
    conn.sendall(f"HTTP/1.1 500 X\r\nContent-Length: {TEN_MB}\r\n\r\n".encode())
    chunk = b"x" * 65536
    for _ in range(TEN_MB // len(chunk)):
        if stopping.is_set():
            return
        conn.sendall(chunk)


def redirect_to_metadata(conn: socket.socket, _: Request, __: threading.Event) -> None:
    conn.sendall(
        f"HTTP/1.1 302 Found\r\nLocation: {METADATA}\r\nContent-Length: 0\r\n\r\n".encode()
    )


#: path -> (behaviour, the attempt's expected (response status, error)).
FAULTS: Mapping[str, tuple[Behaviour | None, tuple[int | None, str | None]]] = {
    "hang": (answer(delay=30), (None, "timeout")),
    "close": (close_mid_response, (200, "connection")),
    "garbage": (garbage, (None, "connection")),
    "huge": (huge, (500, None)),
    "redirect": (redirect_to_metadata, (302, "redirect")),
    "private": (None, (None, "refused_target")),  # the endpoint's URL is the metadata address
}


def resident_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.timeout(180)
def test_misbehaving_receivers_are_failed_attempts_and_others_still_get_theirs(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    for name, (behaviour, _) in FAULTS.items():
        url = METADATA if behaviour is None else receiver.on(f"/{name}", behaviour)
        add_endpoint(
            session, tenant, url, event_types=[f"fault.{name}"], timeout_seconds=1,
            retry_schedule=[],
        )  # fmt: skip
    add_endpoint(session, tenant, receiver.on("/healthy", answer()), event_types=["order.*"])
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        faulty = {name: [enqueue_event(f"fault.{name}", {}, tenant="acme")] for name in FAULTS}
        # Enough hanging calls to hold half the worker's greenlets for the whole timeout.
        faulty["hang"] += [enqueue_event("fault.hang", {}, tenant="acme") for _ in range(9)]
        healthy_started = stopwatch()
        healthy = [enqueue_event("order.created", {"n": n}, tenant="acme") for n in range(HEALTHY)]
        wait_until(all_succeeded(healthy, HEALTHY), 60, "the healthy endpoint's deliveries")
        healthy_in = healthy_started()
        every_fault = [event_id for ids in faulty.values() for event_id in ids]
        wait_until(
            lambda: statuses(every_fault)["failed"] == len(every_fault), 60, "the faults to fail"
        )
        worker.check_alive()
        peak = resident_peak_mb(worker.pid)
    finally:
        worker.stop()
    for name, (_, expected) in FAULTS.items():
        for event_id in faulty[name]:
            [attempt] = attempts_of(event_id)
            assert (attempt.response_status, attempt.error) == expected, name
            assert len(attempt.response_body or "") <= MAX_BODY_BYTES
            assert attempt.duration_ms < 5000, name
    assert receiver.count("/private") == 0
    report(
        "misbehaving receivers",
        f"hang/close/garbage/10 MB/redirect/private each one failed attempt "
        f"(timeout, connection, connection, 500 with 64 KiB kept, redirect, refused_target); "
        f"{HEALTHY} healthy deliveries meanwhile in {healthy_in:.1f}s; "
        f"worker peak RSS {peak:.0f} MB",
    )


def refs(event_ids: list[str]) -> list[broker.DeliveryRef]:
    with new_session() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.endpoint_id).where(Delivery.event_id.in_(event_ids))
        ).all()
    return [broker.DeliveryRef(row.id, row.endpoint_id, "order.created") for row in rows]


def idle(worker: Process, url: str) -> Callable[[], bool]:
    """Nothing waits in the queues and the worker has finished every task it took."""

    def check() -> bool:
        if any(queued(url, queue) for queue in ("deliveries", "retries")):
            return False
        lines = [
            line
            for line in worker.log.read_text(errors="replace").splitlines()
            if "Task webhooks.deliver[" in line
        ]
        received = sum("] received" in line for line in lines)
        return received == len(lines) - received  # one "succeeded"/"raised" line each

    return check


def publish_concurrently(deliveries: list[broker.DeliveryRef], copies: int) -> None:
    """Each delivery's task ``copies`` more times, from ``copies`` threads at once."""
    start = threading.Barrier(copies)

    def publish() -> None:
        start.wait()
        assert broker.publish(deliveries) == len(deliveries)

    threads = [threading.Thread(target=publish) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


@pytest.mark.timeout(180)
def test_a_task_published_many_times_makes_one_attempt_sequence(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    broker_url: str,
    tmp_path: Path,
) -> None:
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def flaky(conn: socket.socket, request: Request, stopping: threading.Event) -> None:
        """500, 500, then 200 for each webhook-id, slowly, so copies overlap the attempts."""
        with lock:
            seen[request.webhook_id] += 1
            number = seen[request.webhook_id]
        answer(500 if number <= 2 else 200, delay=0.2)(conn, request, stopping)

    add_endpoint(
        session, tenant, receiver.on("/once", answer(delay=0.3)), event_types=["order.once"]
    )
    add_endpoint(
        session, tenant, receiver.on("/flaky", flaky), event_types=["order.flaky"],
        retry_schedule=[0, 0, 0],
    )  # fmt: skip
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        once = [enqueue_event("order.once", {"n": n}, tenant="acme") for n in range(20)]
        # Four flaky deliveries fail 8 times in a row: below the circuit breaker's 10, which
        # would hold the rest until beat's sweep lets a probe go (no beat runs here).
        retried = [enqueue_event("order.flaky", {"n": n}, tenant="acme") for n in range(4)]
        publish_concurrently(refs(once + retried), copies=4)
        wait_until(all_succeeded(once + retried, 24), 60, "every delivery to succeed")
        publish_concurrently(refs(once + retried), copies=2)  # and after they are done
        wait_until(idle(worker, broker_url), 60, "the copies to be consumed")
        worker.check_alive()
    finally:
        worker.stop()
    assert receiver.per_webhook_id("/once") == Counter({event_id: 1 for event_id in once})
    assert receiver.per_webhook_id("/flaky") == Counter({event_id: 3 for event_id in retried})
    for event_id in once:
        assert [a.attempt for a in attempts_of(event_id)] == [1]
    for event_id in retried:
        got = [(a.attempt, a.response_status) for a in attempts_of(event_id)]
        assert got == [(1, 500), (2, 500), (3, 200)]
    report(
        "duplicate task messages",
        "24 deliveries, each task published 4 more times concurrently while in flight and "
        "2 more after: 0 extra sends, attempts numbered 1..n once each",
    )


class _Counting:
    """A transport that answers 200 after a pause, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
        *,
        client_certificate: ClientCertificate | None = None,
    ) -> Outcome:
        with self._lock:
            self.calls += 1
        threading.Event().wait(0.2)
        return Outcome(200, {}, b"", None, 200)


def test_concurrent_processing_of_one_delivery_claims_it_once(
    session: Session, tenant: Tenant, worker_env: dict[str, str]
) -> None:
    add_endpoint(session, tenant, "http://127.0.0.1:9/unused")
    event_id = enqueue_event("order.created", {}, tenant="acme")
    [ref] = refs([event_id])
    transport = _Counting()
    start = threading.Barrier(12)
    steps: list[delivery.NextStep] = []

    def race() -> None:
        start.wait()
        steps.append(delivery.process(ref.id, transport))  # type: ignore[arg-type]

    threads = [threading.Thread(target=race) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert transport.calls == 1
    assert len(steps) == 12
    assert [a.attempt for a in attempts_of(event_id)] == [1]
    assert statuses([event_id]) == {"succeeded": 1}
