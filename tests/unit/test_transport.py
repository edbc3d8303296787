"""The transport against real servers on 127.0.0.1, well-behaved and not.

Misbehaving receivers are plain socket servers, so that each can break HTTP exactly where
a test wants it broken. Nothing here needs the internet.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pytest_httpserver import HTTPServer

from webhooks.outbound.http import MAX_BODY_BYTES, Transport
from webhooks.outbound.outcome import Outcome
from webhooks.outbound.ssrf import TargetPolicy

pytestmark = pytest.mark.timeout(30)

LOCAL = TargetPolicy(
    allow_http=True,
    allowed_networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
)
PUBLIC_ONLY = TargetPolicy(allow_http=True)
UA = "webhooks/test"

_real_getaddrinfo = socket.getaddrinfo


class SocketServer:
    """A TCP (optionally TLS) server on 127.0.0.1 running ``handler`` on each connection."""

    def __init__(
        self,
        handler: Callable[[socket.socket, SocketServer], None],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.accepted = 0
        self.requests: list[bytes] = []
        self.notes: list[str] = []
        self.finished = threading.Event()
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def __enter__(self) -> SocketServer:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self.listener.close()
        for conn in self._conns:  # wakes handlers waiting on a kept-alive connection
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            self.handler(conn, self)
        except OSError as exc:
            self.notes.append(f"error: {exc!r}")
        finally:
            conn.close()
            self.finished.set()

    def read_request(self, conn: socket.socket) -> bytes | None:
        """One request (head and Content-Length body), or None at end of stream."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        self.requests.append(data)
        return data


def respond(payload: bytes) -> Callable[[socket.socket, SocketServer], None]:
    """A handler answering every request on the connection with ``payload``."""

    def handler(conn: socket.socket, server: SocketServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(payload)

    return handler


OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
def transport() -> Iterator[Transport]:
    transport = Transport(LOCAL, user_agent=UA)
    yield transport
    transport.close()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names to resolve to one IPv4 address each; anything else goes to the real resolver."""
    names: dict[str, str] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], int(port)))]
        return _real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def timed_post(transport: Transport, url: str, timeout: float = 5.0) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = transport.post(url, {"Content-Type": "application/json"}, b'{"a": 1}', timeout)
    return outcome, time.monotonic() - started


# --- well-behaved receivers ------------------------------------------------------------


def test_2xx_is_ok(transport: Transport, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        "thanks", status=202, headers={"X-Reply": "yes"}
    )
    outcome = transport.post(
        httpserver.url_for("/hook"), {"Content-Type": "application/json", "webhook-id": "e1"},
        b'{"a": 1}', 5,
    )  # fmt: skip
    assert outcome.ok
    assert (outcome.status, outcome.error, outcome.body) == (202, None, b"thanks")
    assert outcome.headers["X-Reply"] == "yes"
    assert 0 <= outcome.duration_ms < 5000
    request, _ = httpserver.log[0]
    assert request.get_data() == b'{"a": 1}'
    assert request.headers["User-Agent"] == UA
    assert request.headers["webhook-id"] == "e1"
    assert request.headers["Content-Type"] == "application/json"


def test_500_is_a_status_not_an_error(transport: Transport, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("boom", status=500)
    outcome = transport.post(httpserver.url_for("/hook"), {}, b"{}", 5)
    assert (outcome.status, outcome.error, outcome.body, outcome.ok) == (500, None, b"boom", False)


def test_redirect_is_not_followed(transport: Transport, httpserver: HTTPServer) -> None:
    target = httpserver.url_for("/elsewhere")
    httpserver.expect_request("/hook").respond_with_data(
        "moved", status=302, headers={"Location": target}
    )
    httpserver.expect_request("/elsewhere").respond_with_data("followed")
    outcome = transport.post(httpserver.url_for("/hook"), {}, b"{}", 5)
    assert (outcome.status, outcome.error, outcome.ok) == (302, "redirect", False)
    assert outcome.headers["Location"] == target
    assert [request.path for request, _ in httpserver.log] == ["/hook"]


def test_headers_keep_their_case_and_repeats_are_joined(transport: Transport) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nX-Multi: a\r\nx-lower: v\r\nX-Multi: b\r\nContent-Length: 0\r\n\r\n"
    )
    with SocketServer(respond(reply)) as server:
        outcome = transport.post(server.url, {}, b"", 5)
    assert outcome.headers == {"X-Multi": "a, b", "x-lower": "v", "Content-Length": "0"}
    assert outcome.ok


def test_keep_alive_reuses_one_connection(transport: Transport) -> None:
    with SocketServer(respond(OK_RESPONSE)) as server:
        first = transport.post(server.url, {}, b"1", 5)
        second = transport.post(server.url, {}, b"2", 5)
        assert first.ok and second.ok
        assert len(server.requests) == 2
        assert server.accepted == 1


# --- misbehaving receivers --------------------------------------------------------------


def test_a_hanging_receiver_times_out_within_budget(transport: Transport) -> None:
    def hang(conn: socket.socket, server: SocketServer) -> None:
        server.read_request(conn)
        server.stop.wait(10)

    with SocketServer(hang) as server:
        outcome, elapsed = timed_post(transport, server.url, timeout=1.0)
    assert (outcome.status, outcome.error) == (None, "timeout")
    assert 1.0 <= elapsed < 1.5
    assert 950 <= outcome.duration_ms < 1500


def drip(head: bytes, byte: bytes = b"x") -> Callable[[socket.socket, SocketServer], None]:
    """Send ``head`` at once, then ``byte`` every 0.2 s: never idle long enough to time out."""

    def handler(conn: socket.socket, server: SocketServer) -> None:
        server.read_request(conn)
        conn.sendall(head)
        while not server.stop.wait(0.2):
            conn.sendall(byte)

    return handler


def test_a_receiver_dripping_the_body_times_out(transport: Transport) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    with SocketServer(drip(head)) as server:
        outcome, elapsed = timed_post(transport, server.url, timeout=1.0)
    assert (outcome.status, outcome.error, outcome.ok) == (200, "timeout", False)
    assert elapsed < 1.5


def test_a_receiver_dripping_the_headers_times_out(transport: Transport) -> None:
    with SocketServer(drip(b"HTTP/1.1 200 OK\r\nX-Slow: ")) as server:
        outcome, elapsed = timed_post(transport, server.url, timeout=1.0)
    assert (outcome.status, outcome.error) == (None, "timeout")
    assert elapsed < 1.5


def test_a_chunked_body_dripping_chunk_sizes_times_out(transport: Transport) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1"
    with SocketServer(drip(head, b"0")) as server:  # a chunk-size line that never ends
        outcome, elapsed = timed_post(transport, server.url, timeout=1.0)
    assert (outcome.status, outcome.error) == (200, "timeout")
    assert elapsed < 1.5


def test_connection_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    transport = Transport(LOCAL, user_agent=UA)
    outcome = transport.post(f"http://127.0.0.1:{port}/", {}, b"", 5)
    assert (outcome.status, outcome.error) == (None, "connection")


def test_connection_closed_mid_response(transport: Transport) -> None:
    def cut(conn: socket.socket, server: SocketServer) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten..")

    with SocketServer(cut) as server:
        outcome = transport.post(server.url, {}, b"", 5)
    assert (outcome.status, outcome.error, outcome.ok) == (200, "connection", False)
    assert outcome.body == b"only ten.."


def test_closed_without_any_response(transport: Transport) -> None:
    def close_at_once(conn: socket.socket, server: SocketServer) -> None:
        server.read_request(conn)

    with SocketServer(close_at_once) as server:
        outcome = transport.post(server.url, {}, b"", 5)
    assert (outcome.status, outcome.error) == (None, "connection")


def test_garbage_that_is_not_http(transport: Transport) -> None:
    with SocketServer(respond(b"\x16\x03\x01 certainly not HTTP\r\n\r\n")) as server:
        outcome = transport.post(server.url, {}, b"", 5)
    assert (outcome.status, outcome.error) == (None, "connection")


def test_a_10_mb_body_is_truncated_and_the_connection_dropped(transport: Transport) -> None:
    size = 10 * 1024 * 1024

    def flood(conn: socket.socket, server: SocketServer) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"y" * 65536
        try:
            for _ in range(size // len(block)):
                conn.sendall(block)
            closed = conn.recv(1) == b""  # a kept-alive client would send or wait, not close
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        except TimeoutError:
            closed = False
        server.notes.append("closed by client" if closed else "kept open")

    with SocketServer(flood) as server:
        outcome, elapsed = timed_post(transport, server.url)
        assert (outcome.status, outcome.error, outcome.ok) == (200, None, True)
        assert outcome.body == b"y" * MAX_BODY_BYTES
        assert elapsed < 2
        assert server.finished.wait(10)
        assert server.notes == ["closed by client"]


# --- refused targets ---------------------------------------------------------------------


def test_refused_target_never_reaches_the_receiver() -> None:
    transport = Transport(PUBLIC_ONLY, user_agent=UA)
    with SocketServer(respond(OK_RESPONSE)) as server:
        outcome = transport.post(server.url, {}, b"", 5)
        assert (outcome.status, outcome.error, outcome.ok) == (None, "refused_target", False)
        assert server.accepted == 0


def test_a_name_resolving_to_loopback_at_send_time_is_refused(fake_dns: dict[str, str]) -> None:
    """DNS rebinding: whatever the name resolved to when saved, the send-time answer rules."""
    transport = Transport(PUBLIC_ONLY, user_agent=UA)
    with SocketServer(respond(OK_RESPONSE)) as server:
        fake_dns["rebind.test"] = "127.0.0.1"
        outcome = transport.post(f"http://rebind.test:{server.port}/hook", {}, b"", 5)
        assert outcome.error == "refused_target"
        assert server.accepted == 0


@pytest.mark.parametrize(
    "url", ["https://user:pw@127.0.0.1/", "ftp://127.0.0.1/", "http://10.0.0.1/"]
)
def test_urls_are_checked_at_send_time(url: str) -> None:
    outcome = Transport(TargetPolicy(), user_agent=UA).post(url, {}, b"", 5)
    assert outcome.error == "refused_target"


def test_a_name_that_does_not_resolve_is_a_connection_error(fake_dns: dict[str, str]) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    transport = Transport(LOCAL, user_agent=UA)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", fail)
        outcome = transport.post("http://nowhere.test/", {}, b"", 5)
    assert (outcome.status, outcome.error) == (None, "connection")


def test_a_name_that_never_resolves_times_out_within_budget() -> None:
    """The request's timeout covers name resolution too (a delivery's lease counts on it)."""
    released = threading.Event()

    def hang(*args: Any, **kwargs: Any) -> Any:
        released.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    transport = Transport(LOCAL, user_agent=UA)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(socket, "getaddrinfo", hang)
            outcome, elapsed = timed_post(transport, "http://slow-dns.test/", timeout=0.5)
    finally:
        released.set()
    assert (outcome.status, outcome.error) == (None, "timeout")
    assert 0.5 <= elapsed < 1.5


def test_an_invalid_header_value_is_reported_not_raised(transport: Transport) -> None:
    with SocketServer(respond(OK_RESPONSE)) as server:
        outcome = transport.post(server.url, {"X-Bad": "a\r\nInjected: yes"}, b"", 5)
        assert outcome.error == "invalid_request"
        assert server.requests == []


# --- through an egress proxy --------------------------------------------------------------


def test_proxy_forwards_checked_targets(fake_dns: dict[str, str]) -> None:
    fake_dns["public.test"] = "93.184.216.34"
    fake_dns["private.test"] = "10.0.0.1"
    with SocketServer(respond(OK_RESPONSE)) as proxy:
        transport = Transport(
            PUBLIC_ONLY, user_agent=UA, https_proxy=f"http://127.0.0.1:{proxy.port}"
        )
        outcome = transport.post("http://public.test/hook", {}, b"", 5)
        assert outcome.ok
        assert proxy.requests[0].startswith(b"POST http://public.test/hook HTTP/1.1\r\n")

        refused = transport.post("http://private.test/hook", {}, b"", 5)
        assert refused.error == "refused_target"
        assert len(proxy.requests) == 1


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA, fake_dns: dict[str, str]) -> Iterator[SocketServer]:
    """An HTTPS receiver for ``receiver.test`` (resolving to 127.0.0.1), recording SNI."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("receiver.test").configure_cert(context)
    with SocketServer(respond(OK_RESPONSE), ssl_context=context) as server:

        def record_sni(sock: Any, name: str | None, ctx: Any) -> None:
            server.notes.append(f"sni: {name}")

        context.sni_callback = record_sni
        fake_dns["receiver.test"] = "127.0.0.1"
        yield server


def test_tls_connects_to_the_checked_address_with_sni_and_verification(
    tls_server: SocketServer, ca: trustme.CA, tmp_path: Path
) -> None:
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    transport = Transport(LOCAL, user_agent=UA, verify=str(ca_path))
    outcome = transport.post(f"https://receiver.test:{tls_server.port}/hook", {}, b"{}", 5)
    assert (outcome.status, outcome.error, outcome.body) == (200, None, b"ok")
    assert tls_server.notes == ["sni: receiver.test"]
    assert tls_server.requests[0].startswith(b"POST /hook HTTP/1.1\r\n")
    assert f"Host: receiver.test:{tls_server.port}".encode() in tls_server.requests[0]


def test_tls_hostname_is_verified(tls_server: SocketServer, ca: trustme.CA, tmp_path: Path) -> None:
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    transport = Transport(LOCAL, user_agent=UA, verify=str(ca_path))
    outcome = transport.post(f"https://127.0.0.1:{tls_server.port}/hook", {}, b"{}", 5)
    assert (outcome.status, outcome.error) == (None, "tls")


def test_an_untrusted_certificate_is_a_tls_error(tls_server: SocketServer) -> None:
    transport = Transport(LOCAL, user_agent=UA)
    outcome = transport.post(f"https://receiver.test:{tls_server.port}/hook", {}, b"{}", 5)
    assert (outcome.status, outcome.error) == (None, "tls")
    assert tls_server.requests == []


def test_outcome_ok_needs_2xx_and_no_error() -> None:
    assert Outcome(204, {}, b"", None, 1).ok
    assert not Outcome(200, {}, b"", "timeout", 1).ok
    assert not Outcome(302, {}, b"", "redirect", 1).ok
    assert not Outcome(None, {}, b"", "connection", 1).ok
