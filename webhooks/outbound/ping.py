"""PING: an ordinary signed call of type ``ping`` with ``data`` ``{}`` (contract §6).

Umbrella Faces' rule: an endpoint is only accepted when it answers a PING, so a typo in a URL
or a receiver that cannot verify our signature shows up when the endpoint is saved, not days
later as a pile of failed deliveries. The PING goes through the same rendering and signing as
every event (:func:`webhooks.messages.build_request`), so a receiver that accepts it accepts
the deliveries that follow.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from webhooks.core.errors import InvalidInput
from webhooks.core.ids import new_id
from webhooks.history.recording import attempt_values, record_attempt
from webhooks.models import Attempt, Endpoint
from webhooks.outbound.http import Transport
from webhooks.outbound.outcome import Outcome
from webhooks.outbound.request import PING_TYPE, OutgoingRequest, build_request, envelope


class PingFailed(InvalidInput):
    """The endpoint did not answer its verification PING with a 2xx in time."""


def send_ping(
    endpoint: Endpoint, transport: Transport, *, at: datetime
) -> tuple[OutgoingRequest, Outcome]:
    """Send a PING to ``endpoint`` as it is now (stored or not); report, never raise."""
    body = envelope(new_id("evt"), PING_TYPE, at, {})
    request = build_request(endpoint, body, at=at)
    outcome = transport.post(request.url, request.headers, request.body, endpoint.timeout_seconds)
    return request, outcome


def record_ping(
    session: Session,
    endpoint: Endpoint,
    request: OutgoingRequest,
    outcome: Outcome,
    *,
    at: datetime,
) -> Attempt:
    """Keep a PING in the endpoint's run history: an attempt of no delivery."""
    values = attempt_values(
        endpoint=endpoint,
        delivery_id=None,
        number=1,
        request=request,
        outcome=outcome,
        started_at=at,
    )
    return record_attempt(session, values)


def describe(outcome: Outcome) -> str:
    """What came back, for a person: ``answered 500``, ``failed: timeout``..."""
    if outcome.error is not None:
        received = f" (status {outcome.status})" if outcome.status is not None else ""
        return f"failed: {outcome.error}{received}"
    return f"answered {outcome.status}"


def verify(
    endpoint: Endpoint, transport: Transport, *, at: datetime
) -> tuple[OutgoingRequest, Outcome]:
    """Send a PING and raise :class:`PingFailed` unless it is answered with a 2xx in time."""
    request, outcome = send_ping(endpoint, transport, at=at)
    if not outcome.ok:
        raise PingFailed(
            f"the verification PING to {endpoint.url} {describe(outcome)}; the endpoint must"
            f" answer 2xx within {endpoint.timeout_seconds}s (or set verify to false)",
            field="url",
        )
    return request, outcome
