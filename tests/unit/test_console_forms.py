"""The console's form fields: each kind reads a posted value as the API takes it, and shows
a stored one (never a credential)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from api.console.forms import OMIT, FormField, Kind, utc_time
from webhooks.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("kind", "raw", "parsed"),
    [
        ("text", "X-Sig", "X-Sig"),
        ("text", "  ", None),
        ("textarea", "a\nb", "a\nb"),
        ("lines", "booking.*\n\n  user.created ", ["booking.*", "user.created"]),
        ("lines", "", []),
        ("json", '{"X-A": "1"}', {"X-A": "1"}),
        ("json", "", None),
        ("headers", '{"X-A": "1"}', {"X-A": "1"}),
        ("integers", "0, 60 5", [0, 60, 5]),
        ("number", "15", 15),
        ("decimal", "0.5", 0.5),
        ("choice", "fifo", "fifo"),
        ("choice", "", None),
        ("secret", "", OMIT),
        ("secret", "S3cret!", "S3cret!"),
        ("secret_json", "", OMIT),
        ("secret_json", '{"type": "bearer", "token": "t"}', {"type": "bearer", "token": "t"}),
    ],
)
def test_each_kind_parses_what_the_api_takes(kind: Kind, raw: str, parsed: Any) -> None:
    assert FormField("f", "F", kind).parse(MultiDict({"f": raw})) == parsed


def test_a_checkbox_is_true_only_when_posted() -> None:
    field = FormField("enabled", "Enabled", "checkbox")
    assert field.parse(MultiDict({"enabled": "on"})) is True
    assert field.parse(MultiDict({})) is False


@pytest.mark.parametrize(
    ("kind", "raw"), [("json", "{nope"), ("integers", "1, x"), ("number", "ten"), ("decimal", "a")]
)
def test_unreadable_values_name_their_field(kind: Kind, raw: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        FormField("f", "F", kind).parse(MultiDict({"f": raw}))
    assert raised.value.field == "f"


def test_stored_values_are_shown_as_typed_and_credentials_never() -> None:
    assert FormField("f", "F", "lines").show(["a", "b.*"]) == "a\nb.*"
    assert FormField("f", "F", "integers").show([0, 60]) == "0, 60"
    assert FormField("f", "F", "json").show({}) == ""
    shown = FormField("f", "F", "headers").show({"Authorization": "Bearer t", "X-Source": "w"})
    assert json.loads(shown) == {"Authorization": "[redacted]", "X-Source": "w"}
    assert FormField("f", "F", "number").show(10) == "10"
    assert FormField("f", "F", "secret").show("whsec_abc") == ""
    assert FormField("f", "F", "secret_json").show({"token": "t"}) == ""
    posted = MultiDict({"f": "typed"})
    assert FormField("f", "F", "secret").posted(posted) == ""
    assert FormField("f", "F", "text").posted(posted) == "typed"


def test_datetime_local_inputs_are_read_as_utc() -> None:
    assert utc_time("2026-12-01T20:00") == "2026-12-01T20:00:00Z"
    assert utc_time("2026-12-01T20:00:05+01:00") == "2026-12-01T20:00:05+01:00"
    assert utc_time("yesterday") == "yesterday"  # the API's schema says what is wrong
