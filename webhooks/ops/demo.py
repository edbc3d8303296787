"""``webhooks dev --demo``: a signed delivery in the history within seconds of a fresh clone.

Everything goes through the public API, as a user's first steps would: create a tenant and
an endpoint pointing at a tiny local receiver, send an event, wait for the delivery, show it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from webhooks.core.errors import WebhooksError


class DemoFailed(WebhooksError):
    """The demo could not complete; the message says at which step."""


@dataclass
class Received:
    """What the demo receiver got, for printing."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


def start_receiver(received: Received) -> ThreadingHTTPServer:
    """A receiver on 127.0.0.1 that answers 204 to every POST and remembers it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.requests.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the demo prints what matters itself."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def call(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    """One JSON request to the API; a problem response becomes :class:`DemoFailed`."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - our own API on 127.0.0.1
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise DemoFailed(f"{method} {path} answered {exc.code}: {exc.read().decode()}") from exc


def run_demo(base: str, token: str, timeout: float = 30) -> dict[str, Any]:
    """Subscribe a local receiver, send one event, and return its succeeded delivery."""
    received = Received()
    receiver = start_receiver(received)
    host, port = receiver.server_address[:2]
    tenant = f"demo-{int(time.time())}"
    call(base, token, "POST", "/v1/tenants", {"uid": tenant, "name": "Demo"})
    endpoint = call(
        base,
        token,
        "POST",
        f"/v1/tenants/{tenant}/endpoints",
        {
            "url": f"http://{host!s}:{port}/webhooks",
            "description": "webhooks dev --demo receiver",
        },
    )
    event = call(
        base,
        token,
        "POST",
        f"/v1/tenants/{tenant}/events",
        {
            "type": "demo.hello",
            "data": {"message": "hello from webhooks dev --demo"},
        },
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = call(base, token, "GET", f"/v1/tenants/{tenant}/events/{event['id']}")
        deliveries = found.get("deliveries", [])
        if deliveries and deliveries[0]["status"] == "succeeded":
            receiver.shutdown()
            delivery = deliveries[0]
            history = f"/v1/tenants/{tenant}/deliveries/{delivery['id']}/attempts"
            return {
                "endpoint": endpoint,
                "delivery": delivery,
                "attempt": call(base, token, "GET", history)["data"][0],
                "received": received.requests[-1],
            }
        time.sleep(0.2)
    receiver.shutdown()
    raise DemoFailed(f"event {event['id']} was not delivered within {timeout:.0f}s")


def describe(result: dict[str, Any]) -> str:
    """The demo's outcome for a person: the delivery's attempt, as the history API shows it."""
    _, body = result["received"]
    delivery, attempt = result["delivery"], result["attempt"]
    response = attempt["response"] or {}
    lines = [
        "",
        f"demo: delivery {delivery['id']} {delivery['status']}; its attempt from the history",
        f"  (GET /v1/tenants/.../deliveries/{delivery['id']}/attempts):",
        f"  attempt {attempt['attempt']} at {attempt['started_at']}, {attempt['duration_ms']} ms,"
        f" response {response.get('status')}, error {attempt['error']}",
        f"  POST {attempt['request']['url']}",
        *(f"  {name}: {value}" for name, value in attempt["request"]["headers"].items()),
        "  body: " + body.decode(),
        "",
    ]
    return "\n".join(lines)
