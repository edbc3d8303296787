"""Every error as ``application/problem+json`` (RFC 9457), with field-level details.

One shape for every failure, from a malformed body to an unreachable database:
``{"type", "title", "status", "detail", "errors": [{"field", "message"}]}``. ``type`` is
``about:blank`` (the status says what kind of problem it is), ``detail`` says it to a person
and ``errors`` names each invalid field by its path in the body (``headers.X-Foo``,
``retry_schedule.0``). Library errors map by class (:data:`LIBRARY_ERRORS`); an error nothing
expected is logged and answered with a bare 500, which the test suite makes sure no input
reaches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app
from marshmallow import Schema, fields
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from webhooks.core.db import is_schema_missing, is_unreachable
from webhooks.core.errors import (
    AccessDenied,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    WebhooksError,
)

PROBLEM_JSON = "application/problem+json"

#: The status each library error answers with (Flask picks the closest class).
LIBRARY_ERRORS: Mapping[type[WebhooksError], int] = {
    NotFound: 404,
    AccessDenied: 403,
    Unauthenticated: 401,
    Conflict: 409,
    InvalidInput: 422,
    PayloadTooLarge: 413,
    DatabaseUnavailable: 503,
}

FieldError = dict[str, str | None]


class FieldErrorSchema(Schema):
    field = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "Path of the field in the request (null: the whole request)"},
    )
    message = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details; documents the body of every error response."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.List(fields.Nested(FieldErrorSchema), required=True)


def problem(
    status: int,
    detail: str,
    errors: Iterable[FieldError] = (),
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """The problem response for ``status``."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": list(errors),
    }
    response = Response(json.dumps(body), status, mimetype=PROBLEM_JSON)
    response.headers.extend(headers)
    return response


def flatten(messages: Any, path: str | None = None) -> list[FieldError]:
    """Marshmallow's nested messages as ``[{"field": "a.b.0", "message": ...}]``.

    ``_schema`` (an error about the object itself) names the object's own path.
    """
    if isinstance(messages, str):
        return [{"field": path, "message": messages}]
    if isinstance(messages, list):
        return [error for message in messages for error in flatten(message, path)]
    if isinstance(messages, Mapping):
        errors: list[FieldError] = []
        for key, nested in messages.items():
            child = path if key == "_schema" else str(key) if path is None else f"{path}.{key}"
            errors.extend(flatten(nested, child))
        return errors
    return [{"field": path, "message": str(messages)}]


def from_http_exception(exc: HTTPException) -> Response:
    """Werkzeug's errors (routing, 400, 401, 403, 413, 415...) and webargs' 422."""
    status = exc.code or 500
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    data = getattr(exc, "data", None) or {}
    if "messages" in data:
        # webargs keys the messages by location ("json", "query"...), which is no field.
        errors = [e for nested in data["messages"].values() for e in flatten(nested)]
        names = ", ".join(sorted({str(e["field"]) for e in errors}))
        return problem(status, f"invalid request: {names}", errors, headers)
    return problem(status, exc.description or HTTPStatus(status).phrase, (), headers)


def status_of(exc: WebhooksError) -> int:
    """The status a library error answers with; the most specific class wins (PayloadTooLarge
    is an InvalidInput too). An error of no listed class is the server's (500)."""
    return next((LIBRARY_ERRORS[cls] for cls in type(exc).__mro__ if cls in LIBRARY_ERRORS), 500)


def from_library_error(exc: WebhooksError) -> Response:
    status = status_of(exc)
    errors: list[FieldError] = []
    if isinstance(exc, InvalidInput):
        errors = [{"field": exc.field, "message": str(exc)}]
    return problem(status, str(exc), errors)


def from_database_error(exc: DBAPIError) -> Response:
    if is_schema_missing(exc):
        return problem(503, "the database has no schema yet: run `webhooks db upgrade`")
    if is_unreachable(exc):
        return problem(503, "the database is unreachable; try again shortly")
    return unexpected(exc)


def unexpected(exc: Exception) -> Response:
    """Last resort: log the traceback, tell the client nothing about the internals."""
    current_app.logger.exception("unhandled error", exc_info=exc)
    return problem(500, "an unexpected error occurred; it has been logged")


def register(app: Flask) -> None:
    """Install the handlers; call after flask-smorest's ``Api``, whose own they replace."""
    app.register_error_handler(HTTPException, from_http_exception)
    for cls in LIBRARY_ERRORS:
        app.register_error_handler(cls, from_library_error)
    app.register_error_handler(DBAPIError, from_database_error)
    app.register_error_handler(Exception, unexpected)
