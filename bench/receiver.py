"""A fast HTTP/1.1 receiver for the benchmarks: it must never be the bottleneck.

It is a bare :class:`asyncio.Protocol` (no framework, no full HTTP parser): it reads the
request line and the headers only to find the path, ``Content-Length`` and ``webhook-id``,
skips the body, answers ``200`` with an empty body and keeps the connection alive. Per
request it appends one ``(webhook-id, path, receive time)`` record to a list. That costs a
few tens of microseconds of CPU, so one process takes thousands of requests a second: far
more than a Celery worker on this machine sends. The harness checks that claim in every run
by reading this process's CPU time (``GET /_bench/stats``) and reports it next to the figures.

Receive times are ``time.monotonic()``: on Linux that is ``CLOCK_MONOTONIC``, one clock for
every process of the machine, so the harness subtracts its own enqueue times from them.

Paths:

- ``/hang/...`` never answers; the request is recorded as a hang, and the connection is kept
  until the client gives up (its timeout) — the head-of-line scenario's dead endpoints.
- ``/slow/<seconds>/...`` answers after that many seconds.
- ``/_bench/stats``, ``/_bench/records?since=N``, ``/_bench/reset``: the harness's control
  interface (JSON); control requests are not recorded.
- anything else answers ``200`` at once.

The server listens on several loopback addresses (``--hosts 50`` binds 127.0.0.1 to
127.0.0.50): each endpoint gets a host of its own, as in production, so a client's
per-host connection pools are exercised as they would be, not all funnelled into one pool.

Run it as ``python -m bench.receiver --port P [--hosts N]``; :class:`Receiver` does that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_MAX_HEAD = 64 * 1024


class _State:
    """Everything the connections share: the records and the counters."""

    def __init__(self) -> None:
        self.records: list[tuple[str | None, str, float]] = []
        self.hangs = 0
        self.connections = 0
        self.started = time.monotonic()

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "pid": os.getpid(),
            "received": len(self.records),
            "hangs": self.hangs,
            "connections": self.connections,
            "cpu_user": usage.ru_utime,
            "cpu_system": usage.ru_stime,
            "max_rss_kb": usage.ru_maxrss,
            "uptime": time.monotonic() - self.started,
        }


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parse heads, count body bytes, answer, repeat."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        #: Body bytes still to skip for the current request; None while reading a head.
        self.body_left: int | None = None
        self.current: tuple[str, str | None, bool] = ("", None, False)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            if self.body_left is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > _MAX_HEAD:
                        self.transport.close()
                    return
                head = bytes(self.buffer[:end])
                del self.buffer[: end + 4]
                self.body_left = self._parse_head(head)
            if len(self.buffer) < self.body_left:
                return
            del self.buffer[: self.body_left]
            self.body_left = None
            self._respond()

    def _parse_head(self, head: bytes) -> int:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
        length = 0
        webhook_id = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"webhook-id":
                webhook_id = value.strip().decode("latin-1")
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        self.current = (path, webhook_id, close)
        return length

    def _respond(self) -> None:
        assert self.transport is not None
        path, webhook_id, close = self.current
        now = time.monotonic()
        if path.startswith("/_bench/"):
            self._control(path, close)
            return
        if path.startswith("/hang"):
            self.state.hangs += 1
            return  # never answered; the client times out and closes
        self.state.records.append((webhook_id, path, now))
        if path.startswith("/slow/"):
            delay = float(path.split("/")[2])
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._write, _OK_CLOSE if close else _OK, close)
            return
        self._write(_OK_CLOSE if close else _OK, close)

    def _write(self, data: bytes, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if close:
            self.transport.close()

    def _control(self, target: str, close: bool) -> None:
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        body: Any
        if url.path == "/_bench/stats":
            body = self.state.stats()
        elif url.path == "/_bench/records":
            since = int(query.get("since", ["0"])[0])
            body = self.state.records[since:]
        elif url.path == "/_bench/reset":
            self.state.records = []
            self.state.hangs = 0
            body = self.state.stats()
        else:
            body = {"error": "unknown control path"}
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        self._write(head + payload, close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def host_address(index: int) -> str:
    """The loopback address of host ``index`` (0 → 127.0.0.1, 49 → 127.0.0.50)."""
    return f"127.0.0.{1 + index}"


async def serve(port: int, hosts: int) -> None:
    state = _State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(state),
        host=[host_address(i) for i in range(hosts)],
        port=port,
        backlog=1024,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hosts", type=int, default=1, help="listen on 127.0.0.1..N")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.hosts))


@dataclass
class ReceiverStats:
    received: int
    hangs: int
    cpu_seconds: float
    connections: int


class Receiver:
    """The harness's handle on a receiver subprocess: start, query, reset, stop."""

    def __init__(self, port: int, hosts: int = 50) -> None:
        self.port = port
        self.hosts = hosts
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "bench.receiver", "--port", str(port), "--hosts", str(hosts)],
            start_new_session=True,
        )
        self._conn: http.client.HTTPConnection | None = None
        deadline = time.monotonic() + 15
        while True:
            try:
                self.stats()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the benchmark receiver did not start") from None
                self._conn = None
                time.sleep(0.05)

    def url(self, index: int, path: str = "ok") -> str:
        """The URL of endpoint ``index``: a host address of its own, and a path."""
        return f"http://{host_address(index % self.hosts)}:{self.port}/{path}/{index}"

    def _get(self, path: str) -> Any:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            self._conn.request("GET", path)
            response = self._conn.getresponse()
            return json.loads(response.read())
        except Exception:
            self._conn.close()
            self._conn = None
            raise

    def stats(self) -> ReceiverStats:
        raw = self._get("/_bench/stats")
        return ReceiverStats(
            received=raw["received"],
            hangs=raw["hangs"],
            cpu_seconds=raw["cpu_user"] + raw["cpu_system"],
            connections=raw["connections"],
        )

    def count(self) -> int:
        return self.stats().received

    def records(self, since: int = 0) -> list[tuple[str | None, str, float]]:
        raw = self._get(f"/_bench/records?since={since}")
        return [(webhook_id, path, float(at)) for webhook_id, path, at in raw]

    def reset(self) -> None:
        self._get("/_bench/reset")

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


if __name__ == "__main__":
    main()
