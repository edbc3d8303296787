"""Which endpoints receive an event type: the one SQL definition, on both databases."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from webhooks.core.db import get_engine
from webhooks.core.dialects import POSTGRES, SQLITE, Dialect
from webhooks.ingest.event_names import matching_sql

CASES = [
    ([], "anything.at.all", True),
    (["booking.created"], "booking.created", True),
    (["booking.created"], "booking.updated", False),
    (["booking.*"], "booking.created", True),
    (["booking.*"], "booking.x.y", True),
    (["booking.*"], "booking", False),
    (["booking.*"], "bookings.x", False),
    (["a.b", "booking.*"], "booking.z", True),
]


def matches(db: Dialect, filters: list[str], name: str) -> bool:
    if db is POSTGRES:
        engine = get_engine()
        filters_sql = "CAST(:filters AS jsonb)"
    else:
        engine = create_engine("sqlite://")
        filters_sql = ":filters"
    with engine.connect() as connection:
        found = connection.execute(
            text(f"SELECT {matching_sql(db, filters_sql)}"),
            {"filters": json.dumps(filters), "type": name},
        ).scalar()
    return bool(found)


@pytest.mark.parametrize("db", [POSTGRES, SQLITE], ids=["postgres", "sqlite"])
@pytest.mark.parametrize(("filters", "name", "expected"), CASES)
def test_matching(db: Dialect, filters: list[str], name: str, expected: bool) -> None:
    assert matches(db, filters, name) is expected
