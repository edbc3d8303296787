"""One call to a receiver, as deliveries, redeliveries and PINGs all make it: the signed
request with the endpoint's ``auth`` and client certificate, sent once, and once more with a
fresh OAuth2 token when the receiver answers 401 to a cached one.

A token endpoint that fails makes the attempt fail with the error class ``auth`` (retried on
the endpoint's schedule like any failure) without the receiver being called.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from webhooks.outbound import client_tls, receiver_auth
from webhooks.outbound.http import Transport
from webhooks.outbound.oauth2 import TokenCache, TokenUnavailable, default_tokens
from webhooks.outbound.outcome import Outcome
from webhooks.outbound.request import OutgoingRequest, RequestTarget, build_request

log = logging.getLogger("webhooks.delivery")

#: :attr:`Outcome.error` of an attempt whose credentials could not be had.
AUTH_ERROR = "auth"

UNAUTHORIZED = 401


def send(
    endpoint: RequestTarget,
    body: Mapping[str, Any],
    transport: Transport,
    *,
    at: datetime,
    tokens: TokenCache | None = None,
) -> tuple[OutgoingRequest, Outcome]:
    """Build, authenticate and POST ``body`` to ``endpoint``; report, never raise.

    The request returned is the one last sent (the retry's, after a 401), as history keeps it.
    ``tokens`` defaults to the process's OAuth2 token cache.
    """
    tokens = default_tokens() if tokens is None else tokens
    certificate = client_tls.of(endpoint.id, endpoint.client_certificate)

    def call() -> tuple[OutgoingRequest, Outcome, str | None]:
        try:
            token = receiver_auth.authorization(
                endpoint.id, endpoint.auth, tokens, endpoint.timeout_seconds
            )
        except TokenUnavailable as exc:
            log.warning("endpoint %s: no OAuth2 token: %s", endpoint.id, exc)
            unsent = build_request(endpoint, body, at=at)
            return unsent, transport.unsent(Outcome(None, {}, b"", AUTH_ERROR, 0)), None
        request = build_request(endpoint, body, at=at, authorization=token)
        outcome = transport.post(
            request.url,
            request.headers,
            request.body,
            endpoint.timeout_seconds,
            client_certificate=certificate,
        )
        return request, outcome, token

    request, outcome, authorization = call()
    credentials = receiver_auth.client_credentials(endpoint.auth)
    if outcome.status == UNAUTHORIZED and credentials is not None and authorization is not None:
        # The token may have been revoked or have expired early: a new one, one more try.
        tokens.reject(endpoint.id, credentials, receiver_auth.bearer_token(authorization))
        request, outcome, _ = call()
    return request, outcome
