"""Matching payloads against tenants' JSON Schemas in bounded time.

A schema is code a tenant hands us to run on every event, in the API's threads and in
``enqueue_event()``. jsonschema as it comes runs ``pattern`` with Python's backtracking
``re`` (``^(a+)+$`` against ``"a" * 28 + "!"`` takes seconds, doubling per character) and
checks ``uniqueItems`` by comparing every pair of objects. So validation here differs in
three ways, none of which changes what a well-behaved schema means:

* ``pattern``, ``patternProperties`` and the property matching of ``additionalProperties``
  run on RE2, which matches in time linear in the text and has no backtracking. RE2 lacks
  lookaround and backreferences; a schema using them is refused when it is saved
  (:func:`check_patterns`), with the offending pattern named, and so is one combining
  ``patternProperties`` with ``unevaluatedProperties`` (which jsonschema resolves with ``re``).
* ``uniqueItems`` hashes a canonical form of each item (linear), and ``multipleOf`` is exact
  decimal arithmetic, which neither overflows nor rounds.
* Every keyword checks a deadline (:data:`VALIDATION_BUDGET_SECONDS` per payload): a schema
  that is merely expensive (deeply nested ``anyOf`` over a large array) ends in a clear
  :class:`SchemaBudgetExceeded` (a 422) instead of holding a thread.
"""

from __future__ import annotations

import contextvars
import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from typing import Any

import re2  # type: ignore[import-untyped]
from jsonschema import ValidationError  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from jsonschema.validators import extend, validator_for  # type: ignore[import-untyped]

from webhooks.core.errors import InvalidInput

#: Most time one payload's validation may take; far above what any sane schema needs.
VALIDATION_BUDGET_SECONDS = 0.5
#: Longest ``pattern`` accepted (RE2 compiles in time and memory linear in it).
MAX_PATTERN_LENGTH = 1000

#: The schema keywords whose string values are patterns, and those whose keys are.
_PATTERN_VALUES = frozenset({"pattern"})
_PATTERN_KEYS = frozenset({"patternProperties"})
#: Keywords whose values are instances (data), not subschemas.
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})


class SchemaBudgetExceeded(InvalidInput):
    """Validating a payload against its type's schema took longer than the budget allows."""


class _OutOfTime(Exception):
    """Raised inside jsonschema by a keyword that finds the deadline passed."""


_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("schema_deadline")


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is our error to report, not stderr noise
    options.max_mem = 8 << 20
    return options


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The RE2 program for ``pattern``; raises ``re2.error`` for syntax RE2 lacks."""
    return re2.compile(pattern, options=_options())


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern).search(text) is not None


def _pattern_problem(pattern: Any) -> str | None:
    """Why ``pattern`` cannot be used, or None."""
    if not isinstance(pattern, str):
        return None  # the metaschema check reports the type
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"is longer than {MAX_PATTERN_LENGTH} characters"
    try:
        _compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        return (
            f"cannot be evaluated in linear time ({reason}); lookaround and backreferences "
            "are not supported"
        )
    return None


def check_patterns(schema: Any) -> None:
    """Refuse a schema with a ``pattern`` (or ``patternProperties`` key) RE2 cannot run.

    ``unevaluatedProperties`` is refused beside ``patternProperties``: jsonschema works out
    which properties were evaluated with Python's backtracking ``re``, and that computation
    has no keyword of its own to hand to RE2.
    """
    pending: list[tuple[Any, str]] = [(schema, "")]
    seen: set[str] = set()
    while pending:
        node, path = pending.pop()
        if isinstance(node, list):
            pending.extend((item, f"{path}/{index}") for index, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            where = f"{path}/{key}"
            if key in _PATTERN_VALUES:
                problem = _pattern_problem(value)
                if problem is not None:
                    raise InvalidInput(
                        f"schema: the pattern {value!r} at '{where}' {problem}", field="schema"
                    )
            if key in _PATTERN_KEYS and isinstance(value, dict):
                for pattern in value:
                    problem = _pattern_problem(pattern)
                    if problem is not None:
                        raise InvalidInput(
                            f"schema: the pattern {pattern!r} at '{where}' {problem}",
                            field="schema",
                        )
            if key not in _DATA_KEYWORDS:
                seen.add(key)
                pending.append((value, where))
    if {"unevaluatedProperties", "patternProperties"} <= seen:
        raise InvalidInput(
            "schema: unevaluatedProperties cannot be combined with patternProperties (use "
            "additionalProperties, which is matched in linear time)",
            field="schema",
        )


# --- the keywords that replace jsonschema's own -----------------------------------------------


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{_preview(instance)} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        names = ", ".join(repr(extra) for extra in sorted(extras)[:10])
        yield ValidationError(f"Additional properties are not allowed ({names} unexpected)")


def _canonical(value: Any) -> Any:
    """A hashable form of a JSON value in which equal values (per JSON Schema) are equal:
    ``1`` and ``1.0`` alike, ``true`` and ``1`` not, key order irrelevant."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", _exact(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))
    if isinstance(value, Mapping):
        return ("object", frozenset((key, _canonical(item)) for key, item in value.items()))
    return ("other", json.dumps(value, default=str))


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for index, item in enumerate(instance):
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"has non-unique elements (item {index} repeats an earlier one)")
            return
        seen.add(key)


def _exact(number: int | float) -> Fraction:
    """``number`` as the decimal it was written as (``0.1`` is one tenth, not its float)."""
    return Fraction(number) if isinstance(number, int) else Fraction(repr(number))


def _multiple_of(validator: Any, divisor: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "number") or not isinstance(divisor, int | float):
        return
    if divisor <= 0:
        return  # the metaschema refuses it; nothing is a multiple of it
    if (_exact(instance) / _exact(divisor)).denominator != 1:
        yield ValidationError(f"{_preview(instance)} is not a multiple of {divisor}")


def _preview(instance: Any) -> str:
    """An instance as an error message quotes it: short, whatever the payload holds."""
    text = repr(instance)
    return text if len(text) <= 80 else f"{text[:77]}..."


_REPLACED: Mapping[str, Callable[..., Iterator[Any]]] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
    "multipleOf": _multiple_of,
}


def _timed(keyword: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    """``keyword``, checking the validation's deadline before it runs."""

    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if time.monotonic() > _deadline.get():
            raise _OutOfTime
        return keyword(validator, value, instance, schema) or iter(())

    return run


@functools.cache
def _bounded(base: Any) -> Any:
    """``base`` (a jsonschema validator class) with the replacements and the deadline."""
    keywords = {**base.VALIDATORS, **{k: v for k, v in _REPLACED.items() if k in base.VALIDATORS}}
    return extend(base, {name: _timed(keyword) for name, keyword in keywords.items()})


def first_error(schema: dict[str, Any], instance: Any) -> Any:
    """The most relevant :class:`jsonschema.ValidationError` of ``instance``, or None.

    Raises :class:`SchemaBudgetExceeded` past :data:`VALIDATION_BUDGET_SECONDS`, and
    :class:`InvalidInput` for a stored schema whose patterns RE2 cannot run (one saved
    before patterns were checked).
    """
    check_patterns(schema)
    validator = _bounded(validator_for(schema))(schema)
    token = _deadline.set(time.monotonic() + VALIDATION_BUDGET_SECONDS)
    try:
        return best_match(validator.iter_errors(instance))
    except _OutOfTime:
        raise SchemaBudgetExceeded(
            f"matching the payload against its type's schema took longer than the "
            f"{VALIDATION_BUDGET_SECONDS:g}s allowed; simplify the schema or the payload",
            field="data",
        ) from None
    finally:
        _deadline.reset(token)
