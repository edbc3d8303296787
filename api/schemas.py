"""Response shapes shared by several resources: deliveries and attempts."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, pre_dump

from api.fields import Timestamp
from webhooks.models import Attempt


class DeliverySchema(Schema):
    id = fields.String(required=True)
    event_id = fields.String(required=True)
    endpoint_id = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"enum": ["pending", "retrying", "succeeded", "failed"]}
    )
    attempts = fields.Integer(required=True)
    next_attempt_at = Timestamp(required=True, allow_none=True)
    last_status_code = fields.Integer(required=True, allow_none=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class AttemptRequestSchema(Schema):
    url = fields.String(required=True)
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "As sent; signature, API key and Authorization values redacted"},
    )
    body = fields.String(required=True)


class AttemptResponseSchema(Schema):
    status = fields.Integer(required=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    body = fields.String(required=True, metadata={"description": "The first 64 KiB"})


class AttemptSchema(Schema):
    """One HTTP request made for a delivery, or a PING (``delivery_id`` null)."""

    id = fields.String(required=True)
    delivery_id = fields.String(required=True, allow_none=True)
    attempt = fields.Integer(required=True)
    started_at = Timestamp(required=True)
    duration_ms = fields.Integer(required=True)
    request = fields.Nested(AttemptRequestSchema, required=True)
    response = fields.Nested(AttemptResponseSchema, required=True, allow_none=True)
    error = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "timeout, connection, tls, redirect, refused_target, internal (a "
            "failure on the dispatcher's side before sending), ..."
        },
    )
    stale = fields.Boolean(
        required=True,
        metadata={
            "description": "Made by a worker that had lost its claim (it ran past its lease "
            "and another worker took the delivery over): kept as history, it changed nothing"
        },
    )

    @pre_dump
    def _nest(self, attempt: Attempt, **_: Any) -> dict[str, Any]:
        """The row keeps request and response in flat columns; the API nests them."""
        has_response = attempt.response_status is not None
        return {
            "id": attempt.id,
            "delivery_id": attempt.delivery_id,
            "attempt": attempt.attempt,
            "started_at": attempt.started_at,
            "duration_ms": attempt.duration_ms,
            "request": {
                "url": attempt.request_url,
                "headers": attempt.request_headers,
                "body": attempt.request_body,
            },
            "response": {
                "status": attempt.response_status,
                "headers": attempt.response_headers or {},
                "body": attempt.response_body or "",
            }
            if has_response
            else None,
            "error": attempt.error,
            "stale": attempt.stale,
        }
