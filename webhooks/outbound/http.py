"""One HTTP POST to a receiver, made safely, reported as an :class:`Outcome`.

Receivers are other people's servers: they may be slow, hang, drip bytes, answer with
gigabytes, redirect into the operator's network or resolve to it. A delivery worker must
survive all of that in bounded time and memory, and record what happened instead of
raising, because a failed call is an ordinary event in the life of a delivery.

The SSRF check (:mod:`webhooks.outbound.ssrf`) is made on the very addresses the socket connects
to: the connection class used by the urllib3 pools resolves the host itself, checks every
address and connects to a checked one. Checking first and letting the HTTP library resolve
again would leave a window for DNS rebinding (an answer that is public for the check and
private a millisecond later). The URL keeps its host name, so the ``Host`` header, SNI,
certificate verification and the keep-alive pools (keyed by host) are those of any client.

With an egress proxy the proxy connects, not us: the host is then resolved and checked
before the request is handed to the proxy, which is a best effort (the proxy resolves
again); the proxy itself is the operator's and is not checked.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, cast

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import PoolManager, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse
from urllib3.util import Timeout
from urllib3.util.connection import create_connection

from webhooks.core.config import get_settings
from webhooks.core.errors import TargetRefused
from webhooks.outbound import client_tls, ssrf
from webhooks.outbound.outcome import MAX_BODY_BYTES, Outcome
from webhooks.outbound.request import USER_AGENT

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from requests.adapters import _HostParams, _PoolKwargs

#: What ``post`` turns into an :class:`Outcome`; anything else is a bug and propagates.
_FAILURES = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
    ValueError,
    TargetRefused,
)


class RefusedAtConnect(TargetRefused):
    """The host resolved to a refused address when connecting.

    Deliberately not an :class:`OSError` nor a urllib3 error, so that neither urllib3 nor
    requests wraps it into a generic connection error on its way out.
    """


class _DeadlineReader(io.RawIOBase):
    """A socket reader that gives up at a fixed time, however the bytes trickle in.

    A socket timeout bounds each ``recv``; a receiver sending one byte per second never
    trips it. Setting the timeout to what is left before every ``recv`` turns it into a
    deadline for the whole response, headers and chunk framing included.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open while read
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out (response deadline)")
        self._sock.settimeout(remaining)
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response, reading through a :class:`_DeadlineReader`.

    urllib3 sets the socket timeout to the time left of the total budget just before the
    response is created, so that timeout is the deadline.
    """

    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        timeout = sock.gettimeout()
        if timeout is not None:
            self.fp.close()
            self.fp = io.BufferedReader(_DeadlineReader(sock, time.monotonic() + timeout))


class _GuardedHTTPConnection(HTTPConnection):
    """A urllib3 connection that only connects to addresses the policy allows."""

    response_class = _DeadlineResponse

    def __init__(
        self, *args: Any, target_policy: ssrf.TargetPolicy | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.target_policy = target_policy

    def _new_conn(self) -> socket.socket:
        if self.target_policy is None or self.proxy is not None:
            return super()._new_conn()  # a connection to the operator's proxy
        return _open_checked_socket(self, self.target_policy)

    def request(self, *args: Any, **kwargs: Any) -> None:
        # A kept-alive socket still has the last response's deadline as its timeout.
        if self.sock is not None:
            self.sock.settimeout(self.timeout)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(HTTPSConnection, _GuardedHTTPConnection):
    """The HTTPS variant: TLS is wrapped around the checked socket with the URL's host."""

    def __init__(
        self, *args: Any, target_policy: ssrf.TargetPolicy | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.target_policy = target_policy


_resolvers: dict[int, ThreadPoolExecutor] = {}


def _lookup_within(host: str, port: int, seconds: float | None) -> list[ssrf.IPAddress]:
    """:func:`webhooks.outbound.ssrf.lookup`, given up after ``seconds``.

    The system resolver has no deadline of its own (its retries can take tens of seconds),
    and a delivery's lease counts on the request's timeout covering name resolution, so the
    lookup runs on a helper thread (a greenlet under gevent) that is waited for at most that
    long. One pool per process: a forked child must not inherit its parent's threads.
    """
    pid = os.getpid()
    resolver = _resolvers.get(pid)
    if resolver is None:
        resolver = _resolvers[pid] = ThreadPoolExecutor(16, thread_name_prefix="resolve")
    future = resolver.submit(ssrf.lookup, host, port)
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        future.cancel()
        raise TimeoutError(f"resolving {host} took more than {seconds:.1f}s") from None


def _open_checked_socket(conn: HTTPConnection, policy: ssrf.TargetPolicy) -> socket.socket:
    """Resolve, check every address, connect to the first that answers.

    Mirrors ``HTTPConnection._new_conn`` (same exceptions, so urllib3 and requests treat
    failures as usual) except for the check. The connect timeout is shared by the name
    resolution and all addresses, and what is left of it bounds the TLS handshake too.
    """
    host, port = conn._dns_host, conn.port
    timeout = conn.timeout
    budget = float(timeout) if isinstance(timeout, int | float) else None
    deadline = None if budget is None else time.monotonic() + budget
    try:
        addresses = _lookup_within(host, port, budget)
    except socket.gaierror as exc:
        raise urllib3.exceptions.NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        raise urllib3.exceptions.ConnectTimeoutError(conn, str(exc)) from exc
    try:
        ssrf.check_addresses(host, addresses, policy)
    except TargetRefused as exc:
        raise RefusedAtConnect(str(exc), field="url") from None
    error: OSError = socket.gaierror(socket.EAI_NONAME, "no address")
    for ip in addresses:
        left = timeout if deadline is None else deadline - time.monotonic()
        if isinstance(left, float | int) and left <= 0:
            error = TimeoutError("timed out")
            break
        try:
            sock = create_connection(
                (str(ip), port),
                left,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except OSError as exc:
            error = exc
            continue
        if deadline is not None:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sys.audit("http.client.connect", conn, conn.host, port)
        return sock
    if isinstance(error, TimeoutError):
        raise urllib3.exceptions.ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out. (connect timeout={timeout})"
        ) from error
    raise urllib3.exceptions.NewConnectionError(
        conn, f"Failed to establish a new connection: {error}"
    ) from error


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def _guarded_pool_classes() -> dict[str, type[HTTPConnectionPool]]:
    return {"http": _GuardedHTTPConnectionPool, "https": _GuardedHTTPSConnectionPool}


class _GuardedPoolManager(PoolManager):
    """Hands the policy to every connection of every pool it creates."""

    def __init__(self, policy: ssrf.TargetPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_classes_by_scheme = _guarded_pool_classes()
        self._policy = policy

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        # Not in the pool key (which would reject an unknown key); one policy per manager.
        pool.conn_kw["target_policy"] = self._policy
        return pool


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter with guarded pools, and proxy pools that keep the deadline.

    With ``ssl_context`` (an endpoint's client certificate) every pool it makes uses that
    context, direct or through the egress proxy: such an adapter serves one endpoint only
    (:meth:`Transport.post`).
    """

    def __init__(
        self, policy: ssrf.TargetPolicy, *, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
    ) -> None:
        # Before super().__init__, which builds the pool manager.
        self._policy = policy
        self._ssl_context = ssl_context
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager = _GuardedPoolManager(
            self._policy, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def build_connection_pool_key_attributes(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if self._ssl_context is not None:
            pool_kwargs["ssl_context"] = self._ssl_context
        return host_params, pool_kwargs

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # not SOCKS, which has pool classes of its own
            manager.pool_classes_by_scheme = _guarded_pool_classes()
        return manager

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        """requests' response, without parsing ``Set-Cookie``: no cookie is ever kept."""
        response = requests.Response()
        response.status_code = getattr(resp, "status", None)  # type: ignore[assignment]
        response.headers = CaseInsensitiveDict(getattr(resp, "headers", {}))
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode() if isinstance(req.url, bytes) else cast(str, req.url)
        response.request = req
        response.connection = self
        return response


class Transport:
    """Sends POSTs; one per worker process, shared by its greenlets or threads.

    The session does not read the environment (``trust_env=False``): requests would
    otherwise look at proxy variables, ``.netrc`` and CA bundle variables on every
    request, which is slow and makes behaviour depend on the process's environment.
    ``https_proxy``, when given, carries every request, ``http://`` ones too: an egress
    proxy is usually the only way out. ``verify`` is True or a CA bundle path.
    """

    def __init__(
        self,
        policy: ssrf.TargetPolicy,
        *,
        verify: bool | str = True,
        https_proxy: str | None = None,
        user_agent: str,
    ) -> None:
        self.policy = policy
        self._verify = verify
        self._proxies = {"http": https_proxy, "https": https_proxy} if https_proxy else {}
        self._session = requests.Session()
        self._session.trust_env = False
        # Identity: a compressed body is a decompression bomb waiting to happen, and the
        # history wants the body as sent.
        self._session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "identity"})
        # One receiver's cookies must never travel to another tenant's endpoint.
        self._session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self._adapter = self._new_adapter()
        self._session.mount("https://", self._adapter)
        self._session.mount("http://", self._adapter)
        #: One adapter (so: pools) per endpoint and client certificate; see :meth:`post`.
        self._mtls_adapters: dict[tuple[str, str], _GuardedAdapter] = {}
        self._mtls_lock = threading.Lock()

    def _new_adapter(self, ssl_context: ssl.SSLContext | None = None) -> _GuardedAdapter:
        return _GuardedAdapter(
            self.policy,
            ssl_context=ssl_context,
            pool_connections=100,
            pool_maxsize=20,
            pool_block=False,
            max_retries=0,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._session.close()
        with self._mtls_lock:
            for adapter in self._mtls_adapters.values():
                adapter.close()
            self._mtls_adapters.clear()

    def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
        *,
        client_certificate: client_tls.ClientCertificate | None = None,
    ) -> Outcome:
        """POST ``body`` to ``url``; everything, body included, within ``timeout`` seconds.

        With ``client_certificate`` the request goes through pools of that endpoint and
        certificate alone, so a connection that presented it never carries another
        endpoint's request, and no other endpoint's connection presents it.
        """
        started = time.monotonic()
        try:
            adapter = self._adapter_for(client_certificate)
            response = self._send(adapter, url, headers, body, timeout)
        except _FAILURES as exc:
            return Outcome(None, {}, b"", _classify(exc), _elapsed_ms(started))
        try:
            return self._receive(response, started, started + timeout)
        finally:
            # Releases a fully read connection to the pool; closes any other one.
            response.close()

    def unsent(self, outcome: Outcome) -> Outcome:
        """Report an attempt that could not be sent (its credentials could not be had).

        It returns ``outcome`` unchanged; wrappers that observe every attempt's outcome (the
        worker's metrics) see such attempts here, as they see the others through :meth:`post`.
        """
        return outcome

    def _adapter_for(self, certificate: client_tls.ClientCertificate | None) -> _GuardedAdapter:
        if certificate is None:
            return self._adapter
        key = certificate.pool_key
        with self._mtls_lock:
            adapter = self._mtls_adapters.get(key)
            if adapter is None:
                stale = [k for k in self._mtls_adapters if k[0] == certificate.owner]
                for old in stale:  # the endpoint's replaced certificate
                    self._mtls_adapters.pop(old).close()
                adapter = self._new_adapter(client_tls.ssl_context(certificate))
                self._mtls_adapters[key] = adapter
            return adapter

    def _send(
        self,
        adapter: _GuardedAdapter,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
    ) -> requests.Response:
        parts = ssrf.check_url(url, self.policy)
        if self._proxies:
            self._check_before_proxy(parts, timeout)
        # Prepared directly: the session's merging (cookies, auth, hooks, settings) has
        # nothing to add, as no cookie is ever kept and the environment is not read.
        merged = CaseInsensitiveDict(self._session.headers)
        merged.update(headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(method="POST", url=url, headers=merged, data=body)
        # The adapter, not the session: Session.send reads a redirect's whole body (to
        # prepare the redirect it is told not to follow) before returning.
        return adapter.send(
            prepared,
            stream=True,
            # A total budget; requests passes a urllib3 Timeout through, its stubs omit it.
            timeout=cast(float, Timeout(total=timeout)),
            verify=self._verify,
            proxies=self._proxies,
        )

    def _check_before_proxy(self, parts: urllib.parse.SplitResult, timeout: float) -> None:
        host = parts.hostname or ""
        addresses = _lookup_within(host, ssrf.default_port(parts), timeout)
        ssrf.check_addresses(host, addresses, self.policy)

    def _receive(self, response: requests.Response, started: float, deadline: float) -> Outcome:
        status = response.status_code
        headers = dict(response.raw.headers.itermerged())
        body = bytearray()
        error: str | None = "redirect" if 300 <= status < 400 else None
        try:
            _read_capped(response.raw, deadline, body)
        except _FAILURES as exc:
            error = _classify(exc)
        return Outcome(status, headers, bytes(body[:MAX_BODY_BYTES]), error, _elapsed_ms(started))


def _read_capped(raw: HTTPResponse, deadline: float, into: bytearray) -> None:
    """Read the body into ``into``, stopping one byte past :data:`MAX_BODY_BYTES`.

    Stopping early leaves the connection unfinished, so closing the response closes it
    instead of draining the rest; a complete body has already released it to the pool.
    """
    while len(into) <= MAX_BODY_BYTES:
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out reading the body")
        chunk = raw.read(MAX_BODY_BYTES + 1 - len(into), decode_content=False)
        if not chunk:
            return
        into += chunk


def _classify(exc: BaseException) -> str:
    """The :attr:`Outcome.error` for a failure, from requests', urllib3's or the OS's error."""
    if any(isinstance(cause, TargetRefused) for cause in _causes(exc)):
        return "refused_target"
    if isinstance(exc, requests.Timeout | urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError | ssl.SSLError):
        return "tls"
    if isinstance(exc, ValueError):
        return "invalid_request"
    return "connection"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3 ``reason``s and args."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        stack.extend(e for e in (*linked, *current.args) if isinstance(e, BaseException))


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


_per_process: dict[int, Transport] = {}


def default_transport() -> Transport:
    """This process's transport, built from the settings on first use.

    Keyed by pid: a prefork worker's children must not share the parent's pooled sockets.
    """
    pid = os.getpid()
    transport = _per_process.get(pid)
    if transport is None:
        settings = get_settings()
        transport = Transport(
            ssrf.TargetPolicy.from_settings(settings),
            verify=settings.ca_bundle or True,
            https_proxy=settings.https_proxy,
            user_agent=USER_AGENT,
        )
        _per_process[pid] = transport
    return transport
