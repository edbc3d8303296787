"""How values read on a page: times, rates, durations, bodies."""

from __future__ import annotations

import json
from datetime import datetime

from flask import Blueprint

from webhooks.core import clock
from webhooks.core.redaction import mask_headers
from webhooks.delivery.circuit import circuit_of
from webhooks.models import Endpoint
from webhooks.outbound import client_tls, receiver_auth


def timestamp(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def milliseconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def pretty(body: str | None) -> str:
    """A body as the history keeps it, indented when it is JSON (else exactly as it is)."""
    if not body:
        return body or ""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def masked(headers: dict[str, str] | None) -> dict[str, str]:
    """An endpoint's custom headers as the API shows them: credential-like values masked."""
    return mask_headers(headers or {})


def circuit(endpoint: Endpoint) -> str:
    """The endpoint's circuit now, as the API's ``circuit`` field shows it."""
    return str(circuit_of(endpoint).shown(clock.now()))


def register(bp: Blueprint) -> None:
    for name, function in (
        ("masked", masked),
        ("auth_view", receiver_auth.public_view),
        ("certificate_view", client_tls.public_view),
        ("timestamp", timestamp),
        ("percent", percent),
        ("ms", milliseconds),
        ("pretty", pretty),
        ("circuit", circuit),
    ):
        bp.add_app_template_filter(function, name)
