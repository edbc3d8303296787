"""Payload schemas run in bounded time: RE2 patterns, linear uniqueItems, exact multipleOf."""

from __future__ import annotations

import pytest

from webhooks.core.errors import InvalidInput
from webhooks.ingest import schema_validation
from webhooks.ingest.event_types import check_schema
from webhooks.ingest.schema_validation import SchemaBudgetExceeded, first_error


def test_a_catastrophic_pattern_is_an_ordinary_mismatch() -> None:
    error = first_error({"pattern": "^(a+)+$"}, "a" * 5000 + "!")
    assert error is not None and "does not match" in error.message
    assert first_error({"pattern": "^(a+)+$"}, "aaaa") is None


def test_pattern_properties_and_additional_properties_use_the_same_engine() -> None:
    schema = {
        "patternProperties": {"^(x+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    assert first_error(schema, {"xxx": 1}) is None
    assert first_error(schema, {"xxx": "one"}) is not None
    error = first_error(schema, {"x" * 3000 + "!": 1})
    assert error is not None and "not allowed" in error.message


@pytest.mark.parametrize("pattern", ["(?=a)b", "(?!a)b", "(?<=a)b", r"(a)\1", "a" * 1001])
def test_patterns_re2_cannot_run_are_refused_when_saved(pattern: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_schema({"properties": {"code": {"type": "string", "pattern": pattern}}})
    assert refused.value.field == "schema"
    assert "/properties/code/pattern" in str(refused.value)


def test_pattern_property_keys_re2_cannot_run_are_refused_when_saved() -> None:
    with pytest.raises(InvalidInput, match="patternProperties"):
        check_schema({"patternProperties": {"(?=x)": {}}})


def test_unevaluated_properties_beside_pattern_properties_is_refused() -> None:
    schema = {"patternProperties": {"^(a+)+$": {}}, "unevaluatedProperties": False}
    with pytest.raises(InvalidInput, match="unevaluatedProperties"):
        check_schema(schema)
    check_schema({"properties": {"a": {}}, "unevaluatedProperties": False})


def test_unique_items_is_linear_and_keeps_json_schema_equality() -> None:
    distinct = [{"n": n, "tag": "x"} for n in range(4000)]
    assert first_error({"uniqueItems": True}, distinct) is None
    error = first_error({"uniqueItems": True}, [*distinct, {"tag": "x", "n": 7}])
    assert error is not None and "non-unique" in error.message
    assert first_error({"uniqueItems": True}, [1, True, 0, False, None]) is None
    assert first_error({"uniqueItems": True}, [1, 1.0]) is not None
    assert first_error({"uniqueItems": True}, [[1, {"a": 1}], [1, {"a": 1.0}]]) is not None


def test_multiple_of_is_exact_for_huge_numbers_and_decimals() -> None:
    huge = 10**400
    assert first_error({"multipleOf": 0.5}, huge) is None
    assert first_error({"multipleOf": 0.3}, huge) is not None
    assert first_error({"multipleOf": 0.1}, 0.3) is None  # decimal, not binary, arithmetic
    assert first_error({"multipleOf": 0.5}, 0.75) is not None


def test_an_expensive_schema_runs_out_of_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_validation, "VALIDATION_BUDGET_SECONDS", 0.05)
    branches = [{"properties": {"a": {"minLength": k}}} for k in range(40)]
    schema = {"items": {"anyOf": [{"anyOf": branches}] * 40}}
    with pytest.raises(SchemaBudgetExceeded) as exceeded:
        first_error(schema, [{"a": 1}] * 5000)
    assert exceeded.value.field == "data"
    assert "took longer than" in str(exceeded.value)
