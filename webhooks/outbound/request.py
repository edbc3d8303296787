"""What a receiver gets: the body and headers of one request.

The same function builds deliveries and PINGs, so a receiver that verifies a PING verifies
every later delivery the same way.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from webhooks import __version__
from webhooks.core.clock import rfc3339
from webhooks.outbound import signing, template

USER_AGENT = f"webhooks/{__version__}"
AUTHORIZATION = "Authorization"


class RequestTarget(signing.Rotating, Protocol):
    """What a request is built from: an ORM endpoint (a PING) or the engine's read-only copy
    of one (a delivery)."""

    @property
    def id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> dict[str, Any]: ...
    @property
    def content_type(self) -> str: ...
    @property
    def template(self) -> str | None: ...
    @property
    def signature_header(self) -> str | None: ...
    @property
    def api_key_header(self) -> str | None: ...
    @property
    def api_key(self) -> str | None: ...
    @property
    def timeout_seconds(self) -> int: ...
    @property
    def signing(self) -> str: ...
    @property
    def auth(self) -> dict[str, Any] | None: ...
    @property
    def client_certificate(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class OutgoingRequest:
    """One request, ready to send: the exact bytes that are signed are the bytes sent."""

    url: str
    headers: dict[str, str]
    body: bytes


def envelope(event_id: str, event_type: str, timestamp: datetime, data: Any) -> dict[str, Any]:
    """The default body, and what template placeholders resolve against."""
    return {"id": event_id, "type": event_type, "timestamp": rfc3339(timestamp), "data": data}


def render_body(endpoint: RequestTarget, body: Mapping[str, Any]) -> bytes:
    """The envelope as compact UTF-8 JSON, or rendered through the endpoint's template."""
    if endpoint.template is None:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return template.render(endpoint.template, body, content_type=endpoint.content_type)


def build_request(
    endpoint: RequestTarget,
    body: Mapping[str, Any],
    *,
    at: datetime,
    authorization: str | None = None,
) -> OutgoingRequest:
    """The signed request for ``body`` (an :func:`envelope`) to ``endpoint`` at time ``at``.

    Custom headers come after ``User-Agent`` (a receiver may want its own) but before the
    signature headers and ``authorization`` (the ``Authorization`` value of the endpoint's
    ``auth``), which nothing may override.
    """
    payload = render_body(endpoint, body)
    secrets = signing.hmac_secrets(endpoint, at)
    headers = {"Content-Type": endpoint.content_type, "User-Agent": USER_AGENT}
    headers.update(endpoint.headers)
    if endpoint.api_key_header and endpoint.api_key:
        headers[endpoint.api_key_header] = endpoint.api_key
    if endpoint.signature_header:
        headers[endpoint.signature_header] = signing.hex_signature(secrets[0], payload)
    if authorization is not None:
        headers[AUTHORIZATION] = authorization
    keys = signing.ed25519_keys(endpoint, at) if endpoint.signing == signing.ED25519 else []
    headers.update(
        signing.signature_headers(
            body["id"], int(at.timestamp()), payload, secrets, private_keys=keys
        )
    )
    return OutgoingRequest(url=endpoint.url, headers=headers, body=payload)
