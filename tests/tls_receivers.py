"""A receiver that requires client certificates: HTTPS on 127.0.0.1 with ``CERT_REQUIRED``,
its server certificate and the accepted clients' issued by one ``trustme`` test CA.

It answers every POST with 200 (keep-alive, so the client's pools are exercised) and records,
per request, the common name of the certificate the client presented on that connection.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.x509.oid import NameOID


def client_certificate(ca: trustme.CA, name: str, **kwargs: Any) -> dict[str, str]:
    """An endpoint's ``client_certificate`` (chain and key) issued by ``ca`` to ``name``."""
    leaf = ca.issue_cert(f"{name}.clients.test", common_name=name, **kwargs)
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems).decode()
    return {"cert": chain, "key": leaf.private_key_pem.bytes().decode()}


class MutualTLSReceiver:
    """``with MutualTLSReceiver(ca) as receiver: ... receiver.url ... receiver.clients``."""

    def __init__(self, ca: trustme.CA) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.verify_mode = ssl.CERT_REQUIRED
        ca.issue_cert("127.0.0.1").configure_cert(context)
        ca.configure_trust(context)
        #: Common name of the client certificate behind each request, in order.
        self.clients: list[str] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                peer = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
                name = (
                    x509.load_der_x509_certificate(peer)
                    .subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
                    .value
                )
                with received._lock:
                    received.clients.append(str(name))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read :attr:`clients`."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MutualTLSReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def write_ca(ca: trustme.CA, directory: Path) -> str:
    """The CA's certificate as a PEM file, for ``verify`` or ``WEBHOOKS_CA_BUNDLE``."""
    path = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)
