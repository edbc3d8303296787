"""Request bodies: JSON only, parsed strictly.

Bodies are read by the strict parser of the standard library rather than Flask's, so that what
would otherwise escape as a 500 is a 400: ``NaN`` and ``Infinity`` (not JSON), integers longer
than Python's digit limit, nesting deeper than the recursion limit, bytes that are not UTF-8.
A body in another media type is a 415, whether or not the route reads a body at all.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flask import Request, request
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


class JSONParser(FlaskParser):
    """webargs' Flask parser with a strict JSON reader; an empty body reads as ``{}``."""

    def load_json(self, req: Request, schema: Schema) -> Any:
        if not core.is_json(req.mimetype):
            return core.missing
        body = req.get_data(cache=True)
        if not body.strip():
            return core.missing
        try:
            return json.loads(body, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None


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
