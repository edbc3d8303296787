"""Request bodies: JSON only, parsed strictly.

Bodies are read whole and bounded (:func:`read_body`: malformed chunked framing is a 400, a
chunked body over the limit a 413), then parsed by the strict parser of the standard library
rather than Flask's, so that what would otherwise escape as a 500 is a 400: ``NaN`` and
``Infinity`` (not JSON), integers longer than Python's digit limit, nesting deeper than the
recursion limit, bytes that are not UTF-8.
A body in another media type is a 415, whether or not the route reads a body at all.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flask import Request, current_app, request
from gunicorn.http.errors import ParseException  # type: ignore[import-untyped]
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


class JSONParser(FlaskParser):
    """webargs' Flask parser with a strict JSON reader; an empty body reads as ``{}``."""

    def load_json(self, req: Request, schema: Schema) -> Any:
        if not core.is_json(req.mimetype):
            return core.missing
        body = read_body(req)
        if not body.strip():
            return core.missing
        try:
            return json.loads(body, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None


_BODY_KEY = "webhooks.body"


def read_body(req: Request) -> bytes:
    """The request body, whole, or a 400 (malformed chunked framing) or 413 (too large).

    With a ``Content-Length`` Werkzeug enforces ``MAX_CONTENT_LENGTH`` itself. A chunked
    body has no declared length: Werkzeug would cut it at the limit (so a too-large body
    surfaced as invalid JSON) and the server's chunk parser raises its own errors from
    inside the read, so such a body is read here, one byte past the limit at most.
    """
    if req.content_length is not None or _BODY_KEY in req.environ:
        return req.environ.get(_BODY_KEY) or req.get_data(cache=True)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        body: bytes = req.environ["wsgi.input"].read(limit + 1)
    except (OSError, ValueError, ParseException) as exc:  # gunicorn's InvalidChunkSize...
        raise BadRequest(f"the request body is malformed: {exc}") from None
    if len(body) > limit:
        raise RequestEntityTooLarge(f"the request body is larger than {limit} bytes")
    req.environ[_BODY_KEY] = body
    return body


def require_json() -> None:
    """``before_request``: a request body must be ``application/json`` (or ``*/*+json``)."""
    if request.url_rule is None or request.method not in _BODY_METHODS:
        return  # no such route (a 404 or 405 says so) or no body expected
    if not request.path.startswith("/v1/"):
        return  # the console's HTML forms
    if core.is_json(request.mimetype):
        return
    if request.content_length or request.headers.get("Transfer-Encoding"):
        raise UnsupportedMediaType(
            f"request bodies must be application/json, not {request.mimetype or 'untyped'}"
        )
