"""Reading a recipe's examples out of its markdown, so that the docs cannot drift from tests.

A recipe marks each example a test relies on with a second word in the fence's info string::

    ```json endpoint
    {"url": "https://hooks.example.com/faces", ...}
    ```

``Recipe("umbrella-faces").json("endpoint")`` is that block, parsed. An ``http`` block is a
request as the receiver gets it: request line, headers, blank line, body (the exact bytes,
without a trailing newline).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response
from werkzeug.serving import BaseWSGIServer, make_server

from api.schemas import AttemptSchema
from tests.api_client import Caller
from tests.services import wait_until
from webhooks.core.db import new_session
from webhooks.models import Attempt

DOCS = Path(__file__).resolve().parents[2] / "docs" / "recipes"

_BLOCK = re.compile(r"^```(\w+) ([\w-]+)\n(.*?)\n```$", re.DOTALL | re.MULTILINE)
_FENCE = re.compile(r"^```([^\n]*)\n(.*?)\n```$", re.DOTALL | re.MULTILINE)


def fenced_blocks(path: Path) -> list[tuple[str, str]]:
    """Every fenced block of a markdown file, tagged or not: ``(info string, text)``."""
    return [(info, text) for info, text in _FENCE.findall(path.read_text())]


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` on a free port of 127.0.0.1 in a thread; yields its base URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


#: Headers whose values change from one request to the next.
VARYING = frozenset({"host", "webhook-id", "webhook-timestamp", "webhook-signature"})

SEED_SECRET = b"S3cret!"


class Received:
    """What the receiver got on one path, and how it answers (by request number, from 1)."""

    def __init__(
        self, server: HTTPServer, path: str, answers: Callable[[int], Response] | None = None
    ) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self._answers = answers or (lambda _: Response("ok", status=200))
        self.path = path
        self.url = server.url_for(path)
        server.expect_request(path, method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(
                (
                    {name.lower(): value for name, value in request.headers.items()},
                    request.get_data(),
                )
            )
            number = len(self.requests)
        return self._answers(number)

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[dict[str, str], bytes]]:
        wait_until(lambda: self.count() >= count, timeout, f"{count} request(s) at {self.path}")
        with self._lock:
            return list(self.requests)


@dataclass(frozen=True)
class HttpExample:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class Recipe:
    def __init__(self, name: str) -> None:
        self.path = DOCS / f"{name}.md"
        self.blocks: dict[str, str] = {}
        for match in _BLOCK.finditer(self.path.read_text()):
            tag = match.group(2)
            assert tag not in self.blocks, f"{self.path.name}: two blocks tagged {tag!r}"
            self.blocks[tag] = match.group(3)

    def text(self, tag: str) -> str:
        assert tag in self.blocks, f"{self.path.name} has no block tagged {tag!r}"
        return self.blocks[tag]

    def json(self, tag: str) -> Any:
        return json.loads(self.text(tag))

    def endpoint(self, tag: str, url_of: Any) -> dict[str, Any]:
        """The endpoint JSON of block ``tag``, its URL moved to the test receiver's path."""
        fields: dict[str, Any] = self.json(tag)
        fields["url"] = url_of(urllib.parse.urlsplit(fields["url"]).path)
        return fields

    def http(self, tag: str) -> HttpExample:
        head, _, body = self.text(tag).partition("\n\n")
        request_line, *lines = head.splitlines()
        method, path, _version = request_line.split(" ")
        headers = {}
        for line in lines:
            name, _, value = line.partition(": ")
            headers[name.lower()] = value
        return HttpExample(method, path, headers, body.encode())


def assert_matches(
    example: HttpExample,
    path: str,
    headers: dict[str, str],
    body: bytes,
    *,
    varying: frozenset[str] = frozenset(),
    substitute: dict[str, str] | None = None,
) -> None:
    """The request received is the example: same path, body and header names, and the same
    header values except those that change with every request. ``substitute`` replaces
    what varies in the example's body (an event id, the time of a PING) by what came."""
    received = {name.lower(): value for name, value in headers.items()}
    expected = example.body
    for old, new in (substitute or {}).items():
        expected = expected.replace(old.encode(), new.encode())
    assert path == example.path
    assert body == expected
    assert sorted(received) == sorted(example.headers)
    for name, value in example.headers.items():
        if name not in VARYING | varying:
            assert received[name] == value, name


def hex_hmac(body: bytes, secret: bytes = SEED_SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_standard(
    body: bytes, headers: dict[str, str], secret: bytes = SEED_SECRET, *, json_parse: bool = True
) -> Any:
    """What a Standard Webhooks receiver does; a plain secret is passed as bytes."""
    return Webhook(secret).verify(body, headers, json_parse=json_parse)


def attempts_of(delivery_id: str) -> list[Attempt]:
    """A delivery's attempts, oldest first (read from the database: see the report)."""
    with new_session() as session:
        query = select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id)
        return list(session.scalars(query))


def as_http(
    path: str, headers: dict[str, str], body: bytes, *, casing: dict[str, str] | None = None
) -> str:
    """A received request written as an ``http`` example block's text (to paste into a doc,
    when a recipe changes): header names spelled as the dispatcher sends them."""
    spelled = {name.lower(): name for name in (casing or {})}
    lines = [f"POST {path} HTTP/1.1"]
    first = ["host"]
    last = ["accept", "accept-encoding", "connection", "content-length"]
    received = {name.lower(): (name, value) for name, value in headers.items()}
    order = first + [n for n in spelled if n in received and n not in first + last] + last
    order += [n for n in received if n not in order]
    for lower in order:
        if lower in received:
            name, value = received[lower]
            spelling = spelled.get(lower) or "-".join(p.capitalize() for p in name.split("-"))
            lines.append(f"{spelling}: {value}")
    return "\n".join(lines) + "\n\n" + body.decode()


def dump(tag: str, text: str) -> None:
    """With ``RECIPES_DUMP=dir`` set, write an example's text there (to refresh the docs)."""
    target = os.environ.get("RECIPES_DUMP")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        Path(target, f"{tag}.txt").write_text(text)


def has_route(client: FlaskClient, suffix: str) -> bool:
    return any(rule.rule.endswith(suffix) for rule in client.application.url_map.iter_rules())


def history(caller: Caller, tenant: str, delivery_id: str) -> list[Any]:
    """A delivery's attempts in the API's shape, oldest first.

    From ``GET .../deliveries/{id}/attempts`` when the API has that route; until then the
    same rows from the database, dumped with the API's own attempt schema.
    """
    if has_route(caller.client, "/deliveries/<id:delivery_id>/attempts"):
        response = caller.get(f"/v1/tenants/{tenant}/deliveries/{delivery_id}/attempts")
        assert response.status_code == 200, response.get_data(as_text=True)
        return sorted(response.get_json()["data"], key=lambda attempt: attempt["attempt"])
    schema = AttemptSchema()
    return [schema.dump(attempt) for attempt in attempts_of(delivery_id)]


def run_history(caller: Caller, tenant: str, endpoint_id: str) -> list[Any]:
    """An endpoint's attempts (deliveries' and PINGs') in the API's shape, newest first.

    From ``GET .../endpoints/{id}/attempts`` when the API has that route, else from the
    database dumped with the API's attempt schema (as :func:`history`).
    """
    if has_route(caller.client, "/endpoints/<id:endpoint_id>/attempts"):
        response = caller.get(f"/v1/tenants/{tenant}/endpoints/{endpoint_id}/attempts")
        assert response.status_code == 200, response.get_data(as_text=True)
        return list(response.get_json()["data"])
    with new_session() as session:
        query = select(Attempt).where(Attempt.endpoint_id == endpoint_id)
        rows = list(session.scalars(query.order_by(Attempt.id.desc())))
    schema = AttemptSchema()
    return [schema.dump(attempt) for attempt in rows]


_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
)


class ForwardProxy:
    """A tiny forward proxy on 127.0.0.1 for ``http://`` URLs: it gets absolute-URI requests
    (``POST http://host:port/path HTTP/1.1``), records them and passes them on verbatim."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                proxy.seen.append((self.command, self.path))
                target = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in _HOP_BY_HOP
                }
                upstream = http.client.HTTPConnection(
                    target.hostname or "", target.port, timeout=10
                )
                try:
                    upstream.request("POST", target.path or "/", body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP | {"content-length", "date", "server"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
