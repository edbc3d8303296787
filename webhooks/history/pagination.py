"""Keyset pagination over the prefixed-ULID primary keys, newest first.

Ids sort by creation time, so the next page is "rows with a smaller id than the last one
shown": ``WHERE id < :after ORDER BY id DESC LIMIT n + 1``. Unlike an OFFSET, a row inserted
between two requests cannot shift the later pages, so no row is shown twice and no row that
existed when the first page was read is skipped. Reading one row more than asked tells
whether there is a next page without a COUNT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from webhooks.history.partitions import planned_once

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and where the next one starts (None on the last page)."""

    items: list[T]
    next_after: str | None


def page(
    session: Session,
    query: Select[T],
    id_column: InstrumentedAttribute[str],
    *,
    limit: int,
    after: str | None = None,
) -> Page[T]:
    """Run ``query`` for the ``limit`` rows after id ``after``, newest first."""
    if after is not None:
        query = query.where(id_column < after)
    newest_first = query.order_by(id_column.desc()).limit(limit + 1)
    rows = list(session.scalars(planned_once(session, newest_first)))
    if len(rows) <= limit:
        return Page(rows, None)
    items = rows[:limit]
    last: Any = items[-1]
    return Page(items, getattr(last, id_column.key))
