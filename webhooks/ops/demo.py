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
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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


#: The one tenant every ``webhooks dev --demo`` uses (made on the first run, reused after).
DEMO_TENANT = "demo"

_DEMO_DESCRIPTION = "webhooks dev --demo receiver"


def _demo_endpoint(base: str, token: str, url: str) -> dict[str, Any]:
    """The demo tenant's endpoint, pointed at this run's receiver (made once, then moved)."""
    tenant = f"/v1/tenants/{DEMO_TENANT}"
    try:
        call(base, token, "GET", tenant)
    except DemoFailed:
        call(base, token, "POST", "/v1/tenants", {"uid": DEMO_TENANT, "name": "Demo"})
    listed = call(base, token, "GET", f"{tenant}/endpoints")["data"]
    mine = [endpoint for endpoint in listed if endpoint["description"] == _DEMO_DESCRIPTION]
    if mine:
        found: dict[str, Any] = call(
            base, token, "PATCH", f"{tenant}/endpoints/{mine[0]['id']}", {"url": url}
        )
        return found
    created: dict[str, Any] = call(
        base, token, "POST", f"{tenant}/endpoints", {"url": url, "description": _DEMO_DESCRIPTION}
    )
    return created


def run_demo(
    base: str, token: str, timeout: float = 30, stopped: Callable[[], bool] = lambda: False
) -> dict[str, Any] | None:
    """Subscribe a local receiver, send one event, and return its succeeded delivery.

    ``stopped`` (whether the dev stack was asked to stop) cuts the wait short: None then,
    since stopping is what was asked for, not a failure.
    """
    received = Received()
    receiver = start_receiver(received)
    host, port = receiver.server_address[:2]
    try:
        endpoint = _demo_endpoint(base, token, f"http://{host!s}:{port}/webhooks")
        tenant = f"/v1/tenants/{DEMO_TENANT}"
        event = call(
            base,
            token,
            "POST",
            f"{tenant}/events",
            {"type": "demo.hello", "data": {"message": "hello from webhooks dev --demo"}},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopped():
            found = call(base, token, "GET", f"{tenant}/events/{event['id']}")
            deliveries = found.get("deliveries", [])
            if deliveries and deliveries[0]["status"] == "succeeded":
                delivery = deliveries[0]
                history = f"{tenant}/deliveries/{delivery['id']}/attempts"
                return {
                    "base": base,
                    "endpoint": endpoint,
                    "delivery": delivery,
                    "attempt": call(base, token, "GET", history)["data"][0],
                    "received": received.requests[-1],
                }
            time.sleep(0.2)
    finally:
        receiver.shutdown()
        receiver.server_close()
    if stopped():
        return None
    raise DemoFailed(f"event {event['id']} was not delivered within {timeout:.0f}s")


def describe(result: dict[str, Any], token_file: Path) -> str:
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
        *verification_hint(result, token_file),
        "",
    ]
    return "\n".join(lines)


def verification_hint(result: dict[str, Any], token_file: Path) -> list[str]:
    """How to check the shown signature oneself: fetch the secret, verify the received call.

    The history redacts the signature; the receiver got it whole, and so can a reader.
    """
    headers, body = result["received"]
    endpoint = result["endpoint"]
    wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
    sent = {name.lower(): value for name, value in headers.items() if name.lower() in wanted}
    secret_path = f"/v1/tenants/{DEMO_TENANT}/endpoints/{endpoint['id']}/secret"
    return [
        "verify it yourself: the receiver got these headers (the history redacts the signature)",
        *(f"  {name}: {value}" for name, value in sent.items()),
        "  the endpoint's secret:",
        f'    curl -s -H "Authorization: Bearer $(cat {token_file})" {result["base"]}{secret_path}',
        "  then, in Python (pip install standardwebhooks), within 5 minutes (the package",
        "  refuses older timestamps):",
        "    from standardwebhooks.webhooks import Webhook",
        f"    Webhook('<secret>').verify({body.decode()!r}, {sent!r})",
    ]
