"""gunicorn's gthread worker, answering the requests it refuses itself as problem+json.

gunicorn refuses some requests before the app sees them: a request line over
``--limit-request-line`` (414), headers over ``--limit-request-field_size`` or
``--limit-request-fields`` (431), malformed framing (400). It answers those with a small HTML
page, which breaks the API's promise that every error is ``application/problem+json``. This
worker keeps gunicorn's decisions (which error, which status) and only rewrites the response
it writes: ``gunicorn 'api:create_app()' --worker-class api.problem_worker.ProblemWorker``.
"""

from __future__ import annotations

import json
import socket
from http import HTTPStatus
from typing import Any

from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from api.errors import PROBLEM_JSON


def problem_response(status: int, detail: str) -> bytes:
    """A complete HTTP/1.1 problem+json response that closes the connection."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
            "errors": [],
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"Connection: close\r\nContent-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _ProblemSocket:
    """The client socket, turning gunicorn's one HTML error response into problem+json."""

    def __init__(self, sock: socket.socket, detail: str) -> None:
        self._sock = sock
        self._detail = detail

    def sendall(self, data: bytes) -> None:
        status_line = data.split(b"\r\n", 1)[0].split(b" ")
        try:
            status = int(status_line[1])
            HTTPStatus(status)
        except (IndexError, ValueError):
            self._sock.sendall(data)
            return
        detail = (
            self._detail if status < 500 else "an unexpected error occurred; it has been logged"
        )
        self._sock.sendall(problem_response(status, detail))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ProblemWorker(ThreadWorker):  # type: ignore[misc]  # untyped base
    """``gthread``, as the Procfile runs it, with problem+json for gunicorn's own errors."""

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, _ProblemSocket(client, _describe(exc)), addr, exc)


def _describe(exc: BaseException) -> str:
    """What the client did wrong, in a sentence (gunicorn's messages are terse)."""
    name = type(exc).__name__
    if name == "LimitRequestLine":
        return "the request line (method and URL) is too long"
    if name == "LimitRequestHeaders":
        return "the request headers are too large or too many"
    return f"the request could not be parsed: {exc}"
