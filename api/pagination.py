"""Lists: ``?limit=`` and ``?cursor=`` in, ``{"data": [...], "next_cursor": ...}`` out.

The cursor is the last id shown, base64url-encoded so that clients treat it as opaque; the
paging itself is :func:`webhooks.history.pagination.page` (keyset on the id, newest first).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, TypeVar

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from api import db
from webhooks.core.ids import ID_PATTERN
from webhooks.history.pagination import page

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 250


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


class Cursor(fields.String):
    """A ``next_cursor`` given back; loads as the id to continue after."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            last_id = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except (binascii.Error, ValueError):
            last_id = ""
        if not ID_PATTERN.fullmatch(last_id):
            raise ValidationError("Not a cursor returned by this API.")
        return last_id


class PageArgs(Schema):
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(1, MAX_LIMIT),
        metadata={"description": "Items per page"},
    )
    cursor = Cursor(
        load_default=None, metadata={"description": "The next_cursor of the previous page"}
    )


def page_of(item: type[Schema]) -> type[Schema]:
    """The schema of a page of ``item``s (named ``<Item>Page`` in the OpenAPI document)."""
    return Schema.from_dict(
        {
            "data": fields.List(fields.Nested(item), required=True),
            "next_cursor": fields.String(
                required=True,
                allow_none=True,
                metadata={"description": "Pass as ?cursor= for the next page; null on the last"},
            ),
        },
        name=item.__name__.removesuffix("Schema") + "Page",
    )


def paginate(
    query: Select[T], id_column: InstrumentedAttribute[str], args: Mapping[str, Any]
) -> dict[str, Any]:
    """One page of ``query`` as the list body, for the :class:`PageArgs` in ``args``."""
    result = page(db.session(), query, id_column, limit=args["limit"], after=args["cursor"])
    next_cursor = None if result.next_after is None else encode_cursor(result.next_after)
    return {"data": result.items, "next_cursor": next_cursor}
