"""The payload filter language: every operator, combinations, and filters refused with the
path of the problem."""

from __future__ import annotations

from typing import Any

import pytest

from webhooks.core.errors import InvalidInput
from webhooks.ingest.filters import MAX_CONDITIONS, MAX_DEPTH, matches, validate_filter

ENVELOPE: dict[str, Any] = {
    "id": "evt_01",
    "type": "booking.created",
    "timestamp": "2026-11-22T10:00:00Z",
    "data": {
        "status": "confirmed",
        "amount": 1500,
        "ratio": 0.5,
        "paid": True,
        "note": None,
        "tags": ["vip", "repeat", 3],
        "guest": {"name": "Ada Lovelace", "nights": 2},
        "rooms": [{"number": 12}, {"number": 14}],
    },
}


def holds(filter_: dict[str, Any]) -> bool:
    return matches(validate_filter(filter_), ENVELOPE)


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"type": "booking.created"}, True),
        ({"type": "booking.cancelled"}, False),
        ({"data.status": "confirmed"}, True),
        ({"data.amount": 1500.0}, True),  # JSON numbers compare by value
        ({"data.paid": 1}, False),  # true is not 1
        ({"data.amount": True}, False),
        ({"data.note": None}, True),
        ({"data.missing": None}, False),  # a missing path is not null
        ({"data.guest": {"name": "Ada Lovelace", "nights": 2}}, True),  # an object, no operators
        ({"data.guest": {"name": "Ada Lovelace"}}, False),
        ({"data.tags": ["vip", "repeat", 3]}, True),
        ({"data.guest.nights": 2}, True),
        ({"data.rooms.1.number": 14}, True),  # a number segment indexes a list
        ({"data.rooms.2.number": 14}, False),
        ({"data.status.deeper": "x"}, False),
        ({}, True),
    ],
)
def test_equality(filter_: dict[str, Any], expected: bool) -> None:
    assert holds(filter_) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"$eq": "confirmed"}, True),
        ({"$eq": "pending"}, False),
        ({"$ne": "pending"}, True),
        ({"$ne": "confirmed"}, False),
        ({"$in": ["pending", "confirmed"]}, True),
        ({"$in": ["pending"]}, False),
        ({"$in": []}, False),
        ({"$nin": ["pending"]}, True),
        ({"$nin": ["pending", "confirmed"]}, False),
        ({"$exists": True}, True),
        ({"$exists": False}, False),
        ({"$contains": "firm"}, True),
        ({"$contains": "FIRM"}, False),
        ({"$contains": 1}, False),
        ({"$gt": "c"}, True),  # strings compare as strings
        ({"$lt": "c"}, False),
        ({"$gt": 1}, False),  # a string is not comparable with a number: no match
    ],
)
def test_operators_on_a_string(condition: dict[str, Any], expected: bool) -> None:
    assert holds({"data.status": condition}) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"$gt": 1000}, True),
        ({"$gt": 1500}, False),
        ({"$gte": 1500}, True),
        ({"$gte": 1500.5}, False),
        ({"$lt": 1500}, False),
        ({"$lt": 2000}, True),
        ({"$lte": 1500}, True),
        ({"$lte": 1499.99}, False),
        ({"$gt": 1000, "$lt": 2000}, True),  # a range: every operator must hold
        ({"$gt": 1000, "$lt": 1200}, False),
        ({"$gt": "1000"}, False),
        ({"$in": [1500.0]}, True),
        ({"$contains": 1}, False),
    ],
)
def test_operators_on_a_number(condition: dict[str, Any], expected: bool) -> None:
    assert holds({"data.amount": condition}) is expected


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"data.tags": {"$contains": "vip"}}, True),
        ({"data.tags": {"$contains": 3}}, True),
        ({"data.tags": {"$contains": "v"}}, False),  # an element, not a substring of one
        ({"data.tags": {"$contains": True}}, False),
        ({"data.paid": {"$gt": 0}}, False),  # booleans are not numbers
        ({"data.paid": {"$in": [True]}}, True),
        ({"data.paid": {"$in": [1]}}, False),
        ({"data.missing": {"$exists": False}}, True),
        ({"data.missing": {"$exists": True}}, False),
        ({"data.note": {"$exists": True}}, True),  # null is present
        ({"data.missing": {"$ne": "x"}}, True),
        ({"data.missing": {"$nin": ["x"]}}, True),
        ({"data.missing": {"$in": [None]}}, False),
        ({"data.missing": {"$eq": None}}, False),
        ({"data.missing": {"$gt": 0}}, False),
        ({"data.missing": {"$lte": 0}}, False),
        ({"data.missing": {"$contains": "x"}}, False),
        ({"data.guest": {"$contains": "name"}}, False),
        ({"timestamp": {"$gte": "2026-11-22T00:00:00Z"}}, True),
        ({"id": {"$eq": "evt_01"}}, True),
    ],
)
def test_operators_on_other_values(filter_: dict[str, Any], expected: bool) -> None:
    assert holds(filter_) is expected


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        # Several keys must all hold.
        ({"data.status": "confirmed", "data.amount": {"$gt": 1000}}, True),
        ({"data.status": "confirmed", "data.amount": {"$gt": 2000}}, False),
        ({"$and": [{"data.status": "confirmed"}, {"data.amount": {"$gt": 1000}}]}, True),
        ({"$and": [{"data.status": "confirmed"}, {"data.amount": {"$gt": 2000}}]}, False),
        ({"$or": [{"data.status": "pending"}, {"data.amount": {"$gt": 1000}}]}, True),
        ({"$or": [{"data.status": "pending"}, {"data.amount": {"$gt": 2000}}]}, False),
        ({"$not": {"data.status": "pending"}}, True),
        ({"$not": {"data.status": "confirmed"}}, False),
        (
            {
                "type": {"$in": ["booking.created", "booking.updated"]},
                "$or": [
                    {"data.amount": {"$gte": 1000}},
                    {"$and": [{"data.paid": True}, {"$not": {"data.tags": {"$contains": "vip"}}}]},
                ],
            },
            True,
        ),
        (
            {
                "$or": [
                    {"data.amount": {"$lt": 1000}},
                    {"$and": [{"data.paid": True}, {"$not": {"data.tags": {"$contains": "vip"}}}]},
                ]
            },
            False,
        ),
        ({"$not": {"$or": [{"data.status": "pending"}, {"data.status": "held"}]}}, True),
        ({"data.status": "confirmed", "$not": {"data.amount": 1500}}, False),
    ],
)
def test_combinations(filter_: dict[str, Any], expected: bool) -> None:
    assert holds(filter_) is expected


def test_no_filter_matches_everything() -> None:
    assert matches(None, ENVELOPE)


def test_a_valid_filter_is_returned_unchanged() -> None:
    filter_ = {"data.status": {"$in": ["a", "b"]}, "$or": [{"type": "x"}, {"type": "y"}]}
    assert validate_filter(filter_) == filter_


@pytest.mark.parametrize(
    ("filter_", "field"),
    [
        ("data.status", "filter"),
        (["data.status"], "filter"),
        ({"data..status": 1}, "filter.data..status"),
        ({".status": 1}, "filter..status"),
        ({"data.": 1}, "filter.data."),
        ({"": 1}, "filter"),
        ({"d" * 201: 1}, f"filter.{'d' * 201}"),
        ({"$where": "x"}, "filter.$where"),
        ({"$eq": 1}, "filter.$eq"),  # operators go under a path
        ({"data.amount": {"$gt": 1, "lt": 2}}, "filter.data.amount.lt"),
        ({"data.amount": {"$between": [1, 2]}}, "filter.data.amount.$between"),
        ({"data.amount": {"$gt": [1]}}, "filter.data.amount.$gt"),
        ({"data.amount": {"$gt": True}}, "filter.data.amount.$gt"),
        ({"data.amount": {"$lte": None}}, "filter.data.amount.$lte"),
        ({"data.amount": {"$gte": {"a": 1}}}, "filter.data.amount.$gte"),
        ({"data.amount": {"$lt": None}}, "filter.data.amount.$lt"),
        ({"data.status": {"$in": "confirmed"}}, "filter.data.status.$in"),
        ({"data.status": {"$nin": {"a": 1}}}, "filter.data.status.$nin"),
        ({"data.status": {"$exists": 1}}, "filter.data.status.$exists"),
        ({"$or": []}, "filter.$or"),
        ({"$or": {"type": "x"}}, "filter.$or"),
        ({"$and": [{"type": "x"}, "type"]}, "filter.$and.1"),
        ({"$and": [{"type": "x"}, {"data.x": {"$bad": 1}}]}, "filter.$and.1.data.x.$bad"),
        ({"$not": [{"type": "x"}]}, "filter.$not"),
        ({"$not": {"$or": [{"a..b": 1}]}}, "filter.$not.$or.0.a..b"),
    ],
)
def test_bad_filters_are_refused_naming_the_path(filter_: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_filter(filter_)
    assert raised.value.field == field
    assert str(raised.value)


def test_nesting_and_size_are_bounded() -> None:
    deep: dict[str, Any] = {"type": "x"}
    for _ in range(MAX_DEPTH + 1):
        deep = {"$not": deep}
    with pytest.raises(InvalidInput, match="nested"):
        validate_filter(deep)
    wide = {f"data.k{i}": i for i in range(MAX_CONDITIONS + 1)}
    with pytest.raises(InvalidInput, match="at most"):
        validate_filter(wide)
    validate_filter({f"data.k{i}": i for i in range(MAX_CONDITIONS)})
