"""Keyset paging on console pages: the API's ``limit`` and ``cursor``, read from the query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import request
from marshmallow import Schema, ValidationError
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute
from werkzeug.exceptions import BadRequest

from api import db
from api.console.forms import query_values
from api.errors import flatten
from api.pagination import PageArgs, encode_cursor
from webhooks.history.pagination import page

T = TypeVar("T")

#: Rows per console page.
PAGE_SIZE = 50


@dataclass(frozen=True)
class ConsolePage(Generic[T]):
    items: list[T]
    #: The query string of the next page's link (the filters kept), or None on the last.
    next_query: dict[str, str] | None


def page_args(schema: type[Schema] = PageArgs, *, times: Iterable[str] = ()) -> dict[str, Any]:
    """The query string loaded through the API's ``schema`` (a 400 page if it is invalid)."""
    values: dict[str, Any] = {"limit": str(PAGE_SIZE), **query_values(request.args, times)}
    try:
        loaded: dict[str, Any] = schema().load(values, unknown="exclude")
    except ValidationError as exc:
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in flatten(exc.messages))
        raise BadRequest(f"invalid filter: {problems}") from None
    return loaded


def paged(
    query: Select[T], id_column: InstrumentedAttribute[str], args: dict[str, Any]
) -> ConsolePage[T]:
    result = page(db.session(), query, id_column, limit=args["limit"], after=args["cursor"])
    if result.next_after is None:
        return ConsolePage(result.items, None)
    kept = {name: value for name, value in request.args.items() if name != "cursor"}
    return ConsolePage(result.items, {**kept, "cursor": encode_cursor(result.next_after)})
