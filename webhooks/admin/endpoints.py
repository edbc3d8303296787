"""Endpoints: creating, changing and rotating them, with every field checked.

An endpoint's fields end up in HTTP requests made from inside the operator's network, so each
is checked before it is stored: header names must be valid and must not override what the
dispatcher itself controls (framing, ``Host``, the Standard Webhooks signature headers), header
values must not smuggle line breaks, the URL must pass :mod:`webhooks.outbound.ssrf`, a JSON
template must render valid JSON. With ``verify`` (the default) a change that alters what the
receiver gets or must check is stored only if the endpoint answers a PING
(:mod:`webhooks.outbound.ping`).

Field values arrive with the types of the :class:`~webhooks.models.Endpoint` columns (the API
checks types); ``None`` resets a field to its default.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from webhooks.core.clock import now
from webhooks.core.errors import InvalidInput, NotFound, TargetRefused
from webhooks.core.ids import new_id
from webhooks.core.redaction import REDACTED
from webhooks.delivery import rate_limit
from webhooks.delivery.circuit import CircuitState
from webhooks.delivery.state import release_waiting
from webhooks.ingest.event_names import validate_filters
from webhooks.ingest.filters import validate_filter
from webhooks.models import Attempt, Endpoint
from webhooks.outbound import client_tls, ping, receiver_auth, signing, ssrf, template
from webhooks.outbound.http import Transport
from webhooks.outbound.request import AUTHORIZATION

#: What an omitted (or null) optional field becomes.
DEFAULTS: Mapping[str, Any] = {
    "description": "",
    "event_types": [],
    "enabled": True,
    "signature_header": None,
    "api_key_header": None,
    "api_key": None,
    "headers": {},
    "content_type": "application/json",
    "template": None,
    "retry_schedule": None,
    "timeout_seconds": 10,
    "signing": signing.HMAC,
    "auth": None,
    "client_certificate": None,
    "filter": None,
    "rate_limit": None,
    "ordering": "none",
}

#: Changes to these can let parked deliveries go (webhooks.delivery.waiting.release).
RELEASING_FIELDS = frozenset({"enabled", "rate_limit", "ordering"})

ORDERINGS = ("none", "fifo")

#: Changes to these alter what the receiver gets or must check, so a PING verifies them.
PING_FIELDS = frozenset(
    {
        "url",
        "secret",
        "signature_header",
        "api_key_header",
        "api_key",
        "headers",
        "content_type",
        "template",
        "signing",
        "auth",
        "client_certificate",
    }
)

#: How long a rotated-out secret keeps signing beside the new one.
ROTATION_GRACE = timedelta(hours=24)

MAX_DESCRIPTION = 1024
MAX_EVENT_TYPES = 100
MAX_HEADERS = 50
MAX_HEADER_NAME = 100
MAX_HEADER_VALUE = 4096
MAX_CONTENT_TYPE = 200
MAX_RETRIES = 50
MAX_RETRY_DELAY = 7 * 86_400
TIMEOUT_RANGE = (1, 30)
PLAIN_SECRET_LENGTH = (6, 128)
SECRET_KEY_BYTES = (24, 64)

#: RFC 9110 ``token``: what a header name is made of.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
HEADER_NAME = re.compile(_TCHARS)
#: RFC 9110 ``field-value``: visible characters, space, tab, obs-text; never CR or LF.
HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
MEDIA_TYPE = re.compile(rf"{_TCHARS}/{_TCHARS}(?:[\t ]*;[\t\x20-\x7e\x80-\xff]*)?")

#: Headers the HTTP client or the dispatcher sets, each with why it may not be overridden.
_RESERVED_HEADERS = {
    "host": "is set from the URL",
    "content-length": "is set from the body",
    "content-type": "is set by content_type",
    "connection": "is a hop-by-hop header",
    "keep-alive": "is a hop-by-hop header",
    "te": "is a hop-by-hop header",
    "trailer": "is a hop-by-hop header",
    "trailers": "is a hop-by-hop header",
    "transfer-encoding": "is a hop-by-hop header",
    "upgrade": "is a hop-by-hop header",
}


def _reserved(name: str) -> str | None:
    """Why a header name may not be set by an endpoint, or None if it may."""
    lower = name.lower()
    if lower.startswith("webhook-"):
        return "is reserved for the Standard Webhooks signature headers"
    if lower.startswith("proxy-"):
        return "is a hop-by-hop header"
    return _RESERVED_HEADERS.get(lower)


def validate_header_name(name: str, field: str) -> str:
    """A header name that is a valid token and not one the dispatcher controls."""
    if not HEADER_NAME.fullmatch(name) or len(name) > MAX_HEADER_NAME:
        raise InvalidInput(
            f"{name!r} is not a valid header name (letters, digits and !#$%&'*+.^_`|~-, at most"
            f" {MAX_HEADER_NAME} characters)",
            field=field,
        )
    reason = _reserved(name)
    if reason is not None:
        raise InvalidInput(f"header {name} {reason} and cannot be set", field=field)
    return name


def validate_header_value(value: str, field: str) -> str:
    """A header value without line breaks or control characters."""
    if len(value) > MAX_HEADER_VALUE or not HEADER_VALUE.fullmatch(value):
        raise InvalidInput(
            f"a header value must be at most {MAX_HEADER_VALUE} printable Latin-1 characters,"
            " without line breaks",
            field=field,
        )
    return value


def validate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Custom headers: at most :data:`MAX_HEADERS`, valid, not reserved, no case duplicates."""
    if len(headers) > MAX_HEADERS:
        raise InvalidInput(f"at most {MAX_HEADERS} custom headers are allowed", field="headers")
    seen: set[str] = set()
    for name, value in headers.items():
        validate_header_name(name, field=f"headers.{name}")
        validate_header_value(value, field=f"headers.{name}")
        if name.lower() in seen:
            raise InvalidInput(
                f"header {name} is given twice (names are case-insensitive)",
                field=f"headers.{name}",
            )
        seen.add(name.lower())
    return dict(headers)


def validate_secret(secret: str, field: str = "secret") -> str:
    """A ``whsec_`` secret with a 24-64 byte key, or a plain printable string of 6-128 chars.

    Plain secrets are what receivers such as Umbrella Faces' type into their own
    configuration (``S3cret!``); they are used as their UTF-8 bytes.
    """
    if secret.startswith(signing.SECRET_PREFIX):
        low, high = SECRET_KEY_BYTES
        try:
            key = base64.b64decode(secret[len(signing.SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not low <= len(key) <= high:
            raise InvalidInput(
                f"a {signing.SECRET_PREFIX} secret must be followed by the base64 of {low} to"
                f" {high} bytes",
                field=field,
            )
        return secret
    low, high = PLAIN_SECRET_LENGTH
    if not low <= len(secret) <= high or not secret.isprintable():
        raise InvalidInput(
            f"a secret must be {signing.SECRET_PREFIX} and base64, or {low} to {high} printable"
            " characters",
            field=field,
        )
    return secret


def _validate_signing(scheme: str) -> str:
    if scheme not in signing.SCHEMES:
        raise InvalidInput(f"signing must be one of {', '.join(signing.SCHEMES)}", field="signing")
    return scheme


def validate_private_key(private_key: str) -> str:
    """A ``whsk_`` ed25519 private key (64-byte seed-and-public form, or a 32-byte seed)."""
    try:
        signing.load_private_key(private_key)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="secret") from None
    return private_key


def validate_content_type(content_type: str) -> str:
    """A media type such as ``application/json`` or ``text/plain; charset=utf-8``."""
    if len(content_type) > MAX_CONTENT_TYPE or not MEDIA_TYPE.fullmatch(content_type):
        raise InvalidInput(
            f"content_type must be a media type such as application/json, at most"
            f" {MAX_CONTENT_TYPE} characters",
            field="content_type",
        )
    return content_type


def validate_retry_schedule(schedule: list[int]) -> list[int]:
    """Delays in seconds before each retry: at most 50, each from 0 to a week."""
    if len(schedule) > MAX_RETRIES:
        raise InvalidInput(f"at most {MAX_RETRIES} retries are allowed", field="retry_schedule")
    for index, delay in enumerate(schedule):
        if not 0 <= delay <= MAX_RETRY_DELAY:
            raise InvalidInput(
                f"a retry delay must be from 0 to {MAX_RETRY_DELAY} seconds",
                field=f"retry_schedule.{index}",
            )
    return list(schedule)


def validate_timeout(seconds: int) -> int:
    low, high = TIMEOUT_RANGE
    if not low <= seconds <= high:
        raise InvalidInput(f"timeout_seconds must be from {low} to {high}", field="timeout_seconds")
    return seconds


def _validate_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"description must be at most {MAX_DESCRIPTION} characters", field="description"
        )
    return description


def validate_rate_limit(rate: float) -> float:
    """Deliveries per second: a positive number within what spacing can honour."""
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not rate_limit.MIN_RATE <= rate <= rate_limit.MAX_RATE
    ):
        raise InvalidInput(
            f"rate_limit must be a number of deliveries per second from {rate_limit.MIN_RATE}"
            f" to {rate_limit.MAX_RATE:g}",
            field="rate_limit",
        )
    return float(rate)


def validate_ordering(ordering: str) -> str:
    if ordering not in ORDERINGS:
        raise InvalidInput(
            f"ordering must be one of {', '.join(ORDERINGS)}, not {ordering!r}", field="ordering"
        )
    return ordering


def _validate_event_types(filters: list[str]) -> list[str]:
    if len(filters) > MAX_EVENT_TYPES:
        raise InvalidInput(
            f"at most {MAX_EVENT_TYPES} event types are allowed", field="event_types"
        )
    return validate_filters(filters)


#: The checks of the fields that have one, each returning the value to store. ``url`` is
#: checked by :func:`webhooks.outbound.ssrf.check_target` and ``template`` against the content type
#: once every field is set (:func:`_check_consistency`).
_CHECKS: Mapping[str, Callable[[Any], Any]] = {
    "description": _validate_description,
    "event_types": _validate_event_types,
    "secret": validate_secret,
    "signature_header": lambda name: validate_header_name(name, "signature_header"),
    "api_key_header": lambda name: validate_header_name(name, "api_key_header"),
    "api_key": lambda key: validate_header_value(key, "api_key"),
    "headers": validate_headers,
    "content_type": validate_content_type,
    "retry_schedule": validate_retry_schedule,
    "timeout_seconds": validate_timeout,
    "signing": _validate_signing,
    "auth": receiver_auth.validate,  # its token_url: _check_targets
    "client_certificate": lambda value: client_tls.validate(value, at=now()),
    "filter": validate_filter,
    "rate_limit": validate_rate_limit,
    "ordering": validate_ordering,
}

#: Every field an endpoint can be given.
FIELDS = frozenset({"url", "secret", *DEFAULTS})


def _value(name: str, value: Any) -> Any:
    """The value to store for ``name``: checked, or the default when ``value`` is None."""
    if name not in FIELDS:
        raise InvalidInput(f"unknown field {name}", field=name)
    if value is None:
        if name == "url":
            raise InvalidInput("url is required", field="url")
        if name == "secret":
            return signing.generate_secret()
        return copy.deepcopy(DEFAULTS[name])
    check = _CHECKS.get(name)
    return value if check is None else check(value)


def _check_consistency(endpoint: Endpoint) -> None:
    """The rules that involve several fields."""
    if endpoint.api_key_header and not endpoint.api_key:
        raise InvalidInput("api_key is required with api_key_header", field="api_key")
    if endpoint.api_key and not endpoint.api_key_header:
        raise InvalidInput("api_key_header is required with api_key", field="api_key_header")
    signature, api_key = endpoint.signature_header, endpoint.api_key_header
    if signature and api_key and signature.lower() == api_key.lower():
        raise InvalidInput(
            "signature_header and api_key_header must differ", field="api_key_header"
        )
    set_by = {
        name.lower(): field
        for field, name in (("signature_header", signature), ("api_key_header", api_key))
        if name
    }
    for name in endpoint.headers:
        if name.lower() in set_by:
            raise InvalidInput(
                f"header {name} is already set by {set_by[name.lower()]}", field=f"headers.{name}"
            )
    if endpoint.template is not None:
        template.validate(endpoint.template, content_type=endpoint.content_type)
    if endpoint.auth is not None:
        named = [*set_by.items(), *((name.lower(), f"headers.{name}") for name in endpoint.headers)]
        for name, field in named:
            if name == AUTHORIZATION.lower():
                raise InvalidInput(f"auth already sets {AUTHORIZATION}", field=field)


def _check_targets(endpoint: Endpoint, policy: ssrf.TargetPolicy) -> None:
    """The URL, and an OAuth2 token URL, must pass the target policy (:mod:`ssrf`)."""
    ssrf.check_target(endpoint.url, policy)
    credentials = receiver_auth.client_credentials(endpoint.auth)
    if credentials is not None:
        try:
            ssrf.check_target(credentials.token_url, policy)
        except TargetRefused as exc:
            raise TargetRefused(f"token_url: {exc}", field="auth.token_url") from None


def _match_signing_key(endpoint: Endpoint) -> None:
    """An ``ed25519`` endpoint has a key pair (made now if it has none); ``hmac`` has none."""
    if endpoint.signing == signing.ED25519 and endpoint.signing_key is None:
        endpoint.signing_key = signing.generate_private_key()
    elif endpoint.signing == signing.HMAC and endpoint.signing_key is not None:
        endpoint.signing_key = None
        endpoint.previous_signing_key = None
        endpoint.previous_signing_key_expires_at = None


def _verify_and_record(session: Session, endpoint: Endpoint, transport: Transport) -> Attempt:
    """PING the endpoint as it now is; on success store it with the PING as its attempt."""
    at = now()
    request, outcome = ping.verify(endpoint, transport, at=at)
    session.add(endpoint)
    session.flush()
    return ping.record_ping(session, endpoint, request, outcome, at=at)


def create_endpoint(
    session: Session,
    tenant_id: str,
    fields: Mapping[str, Any],
    *,
    transport: Transport,
    verify: bool = True,
) -> Endpoint:
    """Check ``fields``, PING unless ``verify`` is false, then add the endpoint.

    :raises InvalidInput: a field is invalid; :class:`~webhooks.core.errors.TargetRefused` for the
        URL; :class:`~webhooks.outbound.ping.PingFailed` when the PING is not answered with a 2xx.
        Nothing is added then.
    """
    # Every column set now, not by the flush: the PING is built from the unsaved object.
    endpoint = Endpoint(id=new_id("ep"), tenant_id=tenant_id)
    for name in sorted(FIELDS | fields.keys()):
        setattr(endpoint, name, _value(name, fields.get(name)))
    _match_signing_key(endpoint)
    _check_consistency(endpoint)
    _check_targets(endpoint, transport.policy)
    if verify:
        _verify_and_record(session, endpoint, transport)
    else:
        session.add(endpoint)
        session.flush()
    return endpoint


def _keep_masked(headers: dict[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with each value sent back as responses mask it (``[redacted]``) replaced
    by the stored value, so that a client can PATCH back what it read without learning or
    losing a credential."""
    return {
        name: current[name] if value == REDACTED and name in current else value
        for name, value in headers.items()
    }


def update_endpoint(
    session: Session,
    endpoint: Endpoint,
    changes: Mapping[str, Any],
    *,
    transport: Transport,
    verify: bool = True,
) -> Endpoint:
    """Apply ``changes`` (any subset of the fields) with the checks of :func:`create_endpoint`.

    A PING is sent only when a field of :data:`PING_FIELDS` actually changes. Setting
    ``secret`` replaces the secret at once, without the grace period of :func:`rotate_secret`.
    Enabling an endpoint again forgets why and since when it was failing (and closes its
    circuit); that, and lifting
    or changing its rate limit or ordering, releases the deliveries that waited for it, as
    far as its controls now allow. On error the endpoint object is left modified: the caller
    rolls the session back.
    """
    values = {name: _value(name, value) for name, value in changes.items()}
    if "headers" in values:
        values["headers"] = _keep_masked(values["headers"], endpoint.headers)
    changed = {name for name, value in values.items() if getattr(endpoint, name) != value}
    for name in changed:
        setattr(endpoint, name, values[name])
    if "secret" in changed:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    _match_signing_key(endpoint)
    _check_consistency(endpoint)
    if changed & {"url", "auth"}:
        _check_targets(endpoint, transport.policy)
    if verify and changed & PING_FIELDS:
        _verify_and_record(session, endpoint, transport)
    if "enabled" in changed and endpoint.enabled:
        endpoint.disabled_reason = None
        endpoint.failing_since = None
        endpoint.circuit, endpoint.circuit_failures = CircuitState.CLOSED, 0
        endpoint.circuit_until = endpoint.circuit_cooldown = None
    if changed & RELEASING_FIELDS and endpoint.enabled:
        session.flush()
        release_waiting(session, endpoint.id)
    return endpoint


def rotate_secret(endpoint: Endpoint, secret: str | None = None, *, at: datetime) -> str:
    """Make ``secret`` (or a generated one) current; the old one signs too for 24 hours.

    On an ``ed25519`` endpoint what signs ``webhook-signature`` is the private key, so that is
    what rotates: ``secret`` is then a ``whsk_`` key (generated if omitted), the new
    ``public_key`` follows from it, and the HMAC secret (for ``signature_header``) stays.
    Returns the new secret or key.
    """
    if endpoint.signing == signing.ED25519 and endpoint.signing_key is not None:
        key = signing.generate_private_key() if secret is None else validate_private_key(secret)
        return _rotate(endpoint, "signing_key", key, at=at, what="key")
    new = signing.generate_secret() if secret is None else validate_secret(secret)
    return _rotate(endpoint, "secret", new, at=at, what="secret")


def _rotate(endpoint: Endpoint, column: str, new: str, *, at: datetime, what: str) -> str:
    """Make ``new`` the endpoint's ``column``; the old value goes to ``previous_<column>``,
    signing until ``previous_<column>_expires_at``."""
    if new == getattr(endpoint, column):
        raise InvalidInput(f"the new {what} must differ from the current one", field="secret")
    setattr(endpoint, f"previous_{column}", getattr(endpoint, column))
    setattr(endpoint, f"previous_{column}_expires_at", at + ROTATION_GRACE)
    setattr(endpoint, column, new)
    return new


def rotation_ends_at(endpoint: Endpoint, at: datetime) -> datetime | None:
    """When the previous secret stops signing, if a rotation is under way at ``at``.

    Only the newest two secrets ever sign: rotating again during a rotation ends the first
    previous secret at once, so this is the one expiry a receiver has to know.
    """
    if len(signing.hmac_secrets(endpoint, at)) < 2:
        return None
    return endpoint.previous_secret_expires_at


def endpoints_query(tenant_id: str) -> Select[Endpoint]:
    """A tenant's endpoints (to page through)."""
    return select(Endpoint).where(Endpoint.tenant_id == tenant_id)


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> Endpoint:
    """The tenant's endpoint ``endpoint_id``; :class:`NotFound` for another tenant's too."""
    endpoint = session.scalar(endpoints_query(tenant_id).where(Endpoint.id == endpoint_id))
    if endpoint is None:
        raise NotFound(f"no endpoint {endpoint_id!r}")
    return endpoint
