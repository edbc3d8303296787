"""Payload filters: which events an endpoint wants, as a condition on the envelope.

A filter is a JSON object whose keys are dotted paths into the envelope (``type``,
``data.status``, ``data.booking.amount``; a number segment indexes a list) and whose values
are either a value (equality) or an object of operators (``$eq``, ``$ne``, ``$gt``, ``$gte``,
``$lt``, ``$lte``, ``$in``, ``$nin``, ``$exists``, ``$contains``). Every key must hold;
``$and``, ``$or`` (lists of filters) and ``$not`` (a filter) combine them.

Filters are checked once, when an endpoint is saved (:func:`validate_filter`, which names the
offending path), so that evaluating one at ingest (:func:`matches`) never fails: an event
whose values do not suit an operator (a string against ``$gt`` a number, a missing path)
simply does not match it. Equality is JSON's: ``true`` is not ``1``, ``1`` is ``1.0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from webhooks.core.errors import InvalidInput

FIELD: Final = "filter"

MAX_DEPTH = 10
"""Deepest nesting of ``$and``/``$or``/``$not`` (a guard against pathological filters)."""

MAX_CONDITIONS = 100
"""Most conditions (path keys and operators) in one filter: evaluated at every ingest."""

MAX_PATH_LENGTH = 200

COMPARISONS: Final = ("$gt", "$gte", "$lt", "$lte")
OPERATORS: Final = ("$eq", "$ne", *COMPARISONS, "$in", "$nin", "$exists", "$contains")
COMBINATORS: Final = ("$and", "$or", "$not")

_ABSENT: Final = object()
"""What a path that does not resolve yields (unlike a present ``null``)."""


# -- Validation --------------------------------------------------------------------------------


def validate_filter(value: Any) -> dict[str, Any]:
    """Check a filter; return it. :class:`InvalidInput` names the path of the problem
    (``filter.data.amount.$gt``, ``filter.$or.1``)."""
    counter = _Counter()
    _check_filter(value, FIELD, 0, counter)
    return dict(value)


class _Counter:
    def __init__(self) -> None:
        self.conditions = 0

    def add(self, where: str) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidInput(f"a filter may have at most {MAX_CONDITIONS} conditions", where)


def _check_filter(value: Any, where: str, depth: int, counter: _Counter) -> None:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be an object of paths and conditions", field=where)
    if depth > MAX_DEPTH:
        raise InvalidInput(f"filters may be nested at most {MAX_DEPTH} deep", field=where)
    for key, condition in value.items():
        here = f"{where}.{key}"
        if not isinstance(key, str) or not key:
            raise InvalidInput("a filter key must be a non-empty path", field=where)
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise InvalidInput(f"{key} takes a non-empty list of filters", field=here)
            for index, item in enumerate(condition):
                _check_filter(item, f"{here}.{index}", depth + 1, counter)
        elif key == "$not":
            _check_filter(condition, here, depth + 1, counter)
        elif key.startswith("$"):
            raise InvalidInput(
                f"{key} is not a combinator ($and, $or, $not); operators go under a path",
                field=here,
            )
        else:
            _check_path(key, here)
            _check_condition(condition, here, counter)


def _check_path(path: str, where: str) -> None:
    if len(path) > MAX_PATH_LENGTH or any(not segment for segment in path.split(".")):
        raise InvalidInput(
            f"{path!r} is not a dotted path (non-empty segments, at most {MAX_PATH_LENGTH}"
            " characters)",
            field=where,
        )


def _is_operator_object(condition: Any) -> bool:
    return isinstance(condition, dict) and any(
        isinstance(key, str) and key.startswith("$") for key in condition
    )


def _check_condition(condition: Any, where: str, counter: _Counter) -> None:
    if not _is_operator_object(condition):
        counter.add(where)  # equality with a value (an object without operators too)
        return
    for operator, operand in condition.items():
        here = f"{where}.{operator}"
        counter.add(here)
        if operator not in OPERATORS:
            raise InvalidInput(
                f"unknown operator {operator!r} (one of {', '.join(OPERATORS)})", field=here
            )
        problem = _OPERAND_PROBLEMS.get(operator, _any_operand)(operand)
        if problem is not None:
            raise InvalidInput(f"{operator} {problem}", field=here)


def _any_operand(_: Any) -> str | None:
    return None


def _comparable_operand(operand: Any) -> str | None:
    if _is_number(operand) or isinstance(operand, str):
        return None
    return "takes a number or a string"


def _list_operand(operand: Any) -> str | None:
    return None if isinstance(operand, list) else "takes a list of values"


def _bool_operand(operand: Any) -> str | None:
    return None if isinstance(operand, bool) else "takes true or false"


_OPERAND_PROBLEMS: Mapping[str, Callable[[Any], str | None]] = {
    **dict.fromkeys(COMPARISONS, _comparable_operand),
    "$in": _list_operand,
    "$nin": _list_operand,
    "$exists": _bool_operand,
}


# -- Evaluation --------------------------------------------------------------------------------


def matches(filter_: Mapping[str, Any] | None, envelope: Mapping[str, Any]) -> bool:
    """Whether the event ``envelope`` (``id``, ``type``, ``timestamp``, ``data``) passes the
    filter; no filter passes everything. The filter was checked by :func:`validate_filter`."""
    if filter_ is None:
        return True
    return _holds(filter_, envelope)


def _holds(filter_: Mapping[str, Any], envelope: Mapping[str, Any]) -> bool:
    for key, condition in filter_.items():
        if key == "$and":
            ok = all(_holds(item, envelope) for item in condition)
        elif key == "$or":
            ok = any(_holds(item, envelope) for item in condition)
        elif key == "$not":
            ok = not _holds(condition, envelope)
        else:
            ok = _satisfies(_resolve(envelope, key), condition)
        if not ok:
            return False
    return True


def _resolve(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` (a number segment indexes a list), or :data:`_ABSENT`."""
    value = document
    for segment in path.split("."):
        if isinstance(value, dict):
            if segment not in value:
                return _ABSENT
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return _ABSENT
    return value


def _satisfies(value: Any, condition: Any) -> bool:
    if not _is_operator_object(condition):
        return value is not _ABSENT and _equal(value, condition)
    return all(_OPERATIONS[op](value, operand) for op, operand in condition.items())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(left: Any, right: Any) -> bool:
    """JSON equality: numbers by value, booleans only with booleans, containers deeply."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


def _ordered(value: Any, operand: Any, test: Callable[[Any, Any], bool]) -> bool:
    """A comparison of two numbers or two strings; anything else does not match."""
    if _is_number(value) and _is_number(operand):
        return test(value, operand)
    if isinstance(value, str) and isinstance(operand, str):
        return test(value, operand)
    return False


def _contains(value: Any, operand: Any) -> bool:
    if isinstance(value, str):
        return isinstance(operand, str) and operand in value
    if isinstance(value, list):
        return any(_equal(item, operand) for item in value)
    return False


_OPERATIONS: Mapping[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda value, operand: value is not _ABSENT and _equal(value, operand),
    "$ne": lambda value, operand: value is _ABSENT or not _equal(value, operand),
    "$gt": lambda value, operand: _ordered(value, operand, lambda a, b: a > b),
    "$gte": lambda value, operand: _ordered(value, operand, lambda a, b: a >= b),
    "$lt": lambda value, operand: _ordered(value, operand, lambda a, b: a < b),
    "$lte": lambda value, operand: _ordered(value, operand, lambda a, b: a <= b),
    "$in": lambda value, operand: value is not _ABSENT and any(_equal(value, o) for o in operand),
    "$nin": lambda value, operand: value is _ABSENT or not any(_equal(value, o) for o in operand),
    "$exists": lambda value, operand: (value is not _ABSENT) is operand,
    "$contains": _contains,
}
