"""Marshmallow fields for what JSON bodies carry into the database.

JSON can say things that Postgres cannot store: ``"\\u0000"`` (text and jsonb refuse NUL), a
lone surrogate such as ``"\\ud800"`` (not encodable as UTF-8), and Python's ``json`` reads
``NaN``, ``Infinity`` and ``1e999`` as floats that jsonb refuses. These fields refuse all of
that with a 422 naming the field, instead of a database error (a 500) at commit time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

from webhooks.core.clock import rfc3339
from webhooks.core.redaction import mask_headers

#: Nesting deeper than this is refused: no payload needs it, and recursion has a limit.
MAX_JSON_DEPTH = 64

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)


def anchored(pattern: re.Pattern[str]) -> str:
    """``pattern`` for the OpenAPI document, where a pattern matches anywhere unless anchored."""
    return f"^(?:{pattern.pattern})$"


def _check_text(value: str) -> None:
    if _UNSTORABLE.search(value):
        raise ValidationError("Must not contain NUL characters or unpaired surrogates.")


class Text(fields.String):
    """A string that can be stored as Postgres text."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        _check_text(text)
        return text


def _check_json(value: Any, depth: int = 0) -> None:
    """Raise :class:`ValidationError` if ``value`` could not be stored as jsonb."""
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"Must not be nested more than {MAX_JSON_DEPTH} levels deep.")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("Numbers must be finite.")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


class JSON(fields.Raw):
    """Any JSON value that jsonb can store (``object_only`` for a JSON object)."""

    def __init__(self, *, object_only: bool = False, **kwargs: Any) -> None:
        if object_only:
            kwargs["metadata"] = {"type": "object", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)
        self.object_only = object_only

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if self.object_only and not isinstance(value, dict):
            raise ValidationError("Must be a JSON object.")
        _check_json(value)
        return value


#: Times from this one on are refused: arithmetic on them (a window's slack, a schedule's
#: delay) would leave the range of dates Python and Postgres can hold.
LATEST_TIME = datetime(9999, 1, 1, tzinfo=UTC)


class Timestamp(fields.Field[datetime]):
    """An RFC 3339 time: written in UTC with a ``Z``, read with any offset but not without,
    before the year 9999."""

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else rfc3339(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            raise ValidationError(
                "Must be an RFC 3339 time with an offset, e.g. 2026-11-22T10:00:00Z."
            )
        try:
            parsed = datetime.fromisoformat(value.upper()).astimezone(UTC)
        except (ValueError, OverflowError):
            raise ValidationError("Not a valid time.") from None
        if parsed >= LATEST_TIME:
            raise ValidationError(f"Must be before {rfc3339(LATEST_TIME)}.")
        return parsed


class MaskedHeaders(fields.Dict):
    """Custom headers as responses show them: credential-like values masked (the rule of
    :mod:`webhooks.core.redaction`); a PATCH that sends a masked value back keeps it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), values=fields.String(), **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else mask_headers(value)


class Number(fields.Float):
    """A JSON number: not a string of digits, not a boolean, finite."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("Must be a number.")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            raise ValidationError("Numbers must be finite.") from None
        if not math.isfinite(number):
            raise ValidationError("Numbers must be finite.")
        return number
