"""Body templates: placeholders rendered for where they stand, and invalid templates refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from webhooks.core.errors import InvalidInput
from webhooks.outbound.template import (
    MAX_TEMPLATE_LENGTH,
    is_json_content_type,
    render,
    syntax_of,
    validate,
)

JSON = "application/json"
TEXT = "text/plain"

ENVELOPE: dict[str, Any] = {
    "id": "evt_1",
    "type": "booking.created",
    "timestamp": "2026-11-22T10:00:00Z",
    "data": {
        "booking": {"id": "B-42", "nights": 3, "paid": True, "notes": None},
        "name": 'a"b',
        "path": "C:\\temp",
        "multiline": "one\ntwo\ttab",
        "unicode": "Zoë → 東京 \u2028",
        "control": "\x00\x1f",
        "items": [{"id": "i0"}, {"id": "i1"}],
        "amount": 12.5,
        "0": "zero key",
    },
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param(
            '{"eventType":"[type]","bookingId":"[data.booking.id]"}',
            '{"eventType":"booking.created","bookingId":"B-42"}',
            id="tprofile",
        ),
        pytest.param(
            '{"text": "Event [type] for [data.booking.id]"}',
            '{"text": "Event booking.created for B-42"}',
            id="slack",
        ),
        pytest.param(
            '{"booking": [data.booking]}',
            '{"booking": {"id":"B-42","nights":3,"paid":true,"notes":null}}',
            id="bare-object",
        ),
        pytest.param('{"n": [data.booking.nights]}', '{"n": 3}', id="bare-number"),
        pytest.param('{"n": [data.amount]}', '{"n": 12.5}', id="bare-float"),
        pytest.param('{"n": [data.booking.notes]}', '{"n": null}', id="bare-null"),
        pytest.param('{"n": [data.booking.paid]}', '{"n": true}', id="bare-bool"),
        pytest.param('{"s": [data.name]}', '{"s": "a\\"b"}', id="bare-string"),
        pytest.param(
            "[data]",
            json.dumps(ENVELOPE["data"], ensure_ascii=False, separators=(",", ":")),
            id="whole-data",
        ),
        pytest.param('{"x": "[data.name]"}', '{"x": "a\\"b"}', id="escaped-quote"),
        pytest.param('{"x": "[data.path]"}', '{"x": "C:\\\\temp"}', id="escaped-backslash"),
        pytest.param('{"x": "[data.multiline]"}', '{"x": "one\\ntwo\\ttab"}', id="escaped-newline"),
        pytest.param('{"x": "[data.unicode]"}', '{"x": "Zoë → 東京 \u2028"}', id="unicode"),
        pytest.param('{"x": "[data.control]"}', '{"x": "\\u0000\\u001f"}', id="control"),
        pytest.param('{"x": "n=[data.booking.nights]"}', '{"x": "n=3"}', id="number-in-string"),
        pytest.param(
            '{"x": "[data.booking]"}',
            '{"x": "{\\"id\\":\\"B-42\\",\\"nights\\":3,\\"paid\\":true,\\"notes\\":null}"}',
            id="object-in-string",
        ),
        pytest.param('{"x": "[data.booking.notes]"}', '{"x": "null"}', id="null-in-string"),
        pytest.param('{"x": "<[data.nope]>"}', '{"x": "<>"}', id="missing-in-string"),
        pytest.param('{"x": [data.nope]}', '{"x": null}', id="missing-bare"),
        pytest.param('{"x": [data.booking.id.deeper]}', '{"x": null}', id="missing-below-string"),
        pytest.param('{"x": [data.items.5]}', '{"x": null}', id="missing-index"),
        pytest.param('{"x": "[data.items.1.id]"}', '{"x": "i1"}', id="list-index"),
        pytest.param('{"x": [data.items.0]}', '{"x": {"id":"i0"}}', id="list-index-bare"),
        pytest.param('{"x": "[data.0]"}', '{"x": "zero key"}', id="digit-key-in-object"),
        pytest.param('{"x": [1, 2], "y": ["a"]}', '{"x": [1, 2], "y": ["a"]}', id="json-array"),
        pytest.param(
            '{"x": [true, [null], [false]]}', '{"x": [true, [null], [false]]}', id="keywords"
        ),
        pytest.param('{"x": [[data.booking.nights]]}', '{"x": [3]}', id="placeholder-in-array"),
        pytest.param(
            '{"x": "say \\"[data.name]\\" [type]"}',
            '{"x": "say \\"a\\"b\\" booking.created"}',
            id="escaped-quote-before-placeholder",
        ),
        pytest.param(
            '{"x": "\\\\", "y": [data.booking.nights]}',
            '{"x": "\\\\", "y": 3}',
            id="escaped-backslash-ends-string",
        ),
        pytest.param(
            '{"x": "[not a path]", "y": "[1]"}', '{"x": "[not a path]", "y": "[1]"}', id="not-paths"
        ),
        pytest.param('{"[type]": 1}', '{"booking.created": 1}', id="placeholder-in-key"),
    ],
)
def test_render_json(template: str, expected: str) -> None:
    rendered = render(template, ENVELOPE, content_type=JSON)
    assert rendered.decode("utf-8") == expected
    json.loads(rendered)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("Event [type] for [data.name]", 'Event booking.created for a"b', id="text"),
        pytest.param("n=[data.booking.nights]&p=[data.booking.paid]", "n=3&p=true", id="form"),
        pytest.param("<id>[data.nope]</id>", "<id></id>", id="missing"),
        pytest.param("[data.items]", '[{"id":"i0"},{"id":"i1"}]', id="list"),
        pytest.param('"[data.path]" [1, 2]', '"C:\\temp" [1, 2]', id="quotes-mean-nothing"),
        pytest.param("[data.booking.notes]", "null", id="null"),
        pytest.param("", "", id="empty"),
    ],
)
def test_render_not_json(template: str, expected: str) -> None:
    assert render(template, ENVELOPE, content_type=TEXT) == expected.encode("utf-8")


TRICKY_STRINGS = [
    "",
    '"',
    "\\",
    '\\"',
    '"]}',
    '", "admin": true, "x": "',
    "\n\r\t\b\f",
    "".join(chr(c) for c in range(32)),
    "\u2028\u2029",
    "\x7f",
    "😀 東京",
    "[type]",
    "[data.s]",
    "\\u0041",
    ']"[',
    "\ud800",
]


@pytest.mark.parametrize("value", TRICKY_STRINGS)
def test_any_string_value_keeps_json_valid(value: str) -> None:
    envelope = {"type": value, "data": {"s": value, "list": [value], "obj": {value: value}}}
    template = (
        '{"in": "<[data.s]>", "bare": [data.s], "list": [data.list], "obj": [data.obj],'
        ' "obj_in": "[data.obj]", "text": "[type] and [data.s]"}'
    )
    parsed = json.loads(render(template, envelope, content_type=JSON))
    assert parsed["bare"] == value
    assert parsed["list"] == [value]
    assert parsed["obj"] == {value: value}
    assert json.loads(parsed["obj_in"]) == {value: value}
    if "\ud800" not in value:  # a lone surrogate comes back as the escape it was sent as
        assert parsed["in"] == f"<{value}>"
        assert parsed["text"] == f"{value} and {value}"


def test_lone_surrogate_is_escaped() -> None:
    envelope = {"data": {"s": "\ud800"}}
    assert render('"[data.s]"', envelope, content_type=JSON) == b'"\\ud800"'
    assert render("[data.s]", envelope, content_type=TEXT) == b"\\ud800"


def test_render_is_utf8() -> None:
    assert render('"[data.unicode]"', ENVELOPE, content_type=JSON) == (
        '"Zoë → 東京 \u2028"'.encode()
    )


def test_render_same_template_many_envelopes() -> None:
    template = '{"id": "[data.id]", "n": [data.n]}'
    for n in range(50):
        body = render(template, {"data": {"id": f"x{n}", "n": n}}, content_type=JSON)
        assert json.loads(body) == {"id": f"x{n}", "n": n}


@pytest.mark.parametrize(
    "template",
    [
        '{"eventType":"[type]","bookingId":"[data.booking.id]"}',
        '{"booking": [data.booking], "items": [1, [data.items]]}',
        "[data]",
        '"[type]"',
        '{"a": [true, [null]]}',
        " \n{}\n",
    ],
)
def test_validate_accepts(template: str) -> None:
    validate(template, content_type=JSON)


@pytest.mark.parametrize(
    ("template", "where"),
    [
        ('{"a": [data.x] "b": 1}', "line 1 column 16"),
        ('{"a": "[data.x]",\n  "b" [data.y]}', "line 2 column 7"),
        ('{"a": "[type]}', "line 1 column 7"),
        ('{"a": [type]"}', "line 1 column 13"),
        ("{'a': 1}", "line 1 column 2"),
        ("", "line 1 column 1"),
        ('{"a": 1} trailing', "line 1 column 10"),
        ('{"a": [data.x]', "line 1 column 15"),
    ],
)
def test_validate_refuses_invalid_json(template: str, where: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate(template, content_type=JSON)
    assert info.value.field == "template"
    assert "valid JSON" in str(info.value)
    assert where in str(info.value)


def test_validate_not_json_takes_anything() -> None:
    validate("Event [type] {not json", content_type=TEXT)
    validate("", content_type=TEXT)


@pytest.mark.parametrize("content_type", [JSON, TEXT])
def test_validate_refuses_long_templates(content_type: str) -> None:
    longest = '"' + "x" * (MAX_TEMPLATE_LENGTH - 2) + '"'
    validate(longest, content_type=content_type)
    with pytest.raises(InvalidInput) as info:
        validate(longest + " ", content_type=content_type)
    assert info.value.field == "template"
    assert str(MAX_TEMPLATE_LENGTH) in str(info.value)


@pytest.mark.parametrize(
    ("content_type", "is_json"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        (" application/json ;charset=UTF-8", True),
        ("application/problem+json", True),
        ("application/vnd.api+json; ext=x", True),
        ("text/json", True),
        ("Text/JSON; charset=utf-8", True),
        ("application/x-json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("application/xml", False),
        ("application/jsonx", False),
        ("application/+json", False),
        ("+json", False),
        ("", False),
    ],
)
def test_is_json_content_type(content_type: str, is_json: bool) -> None:
    assert is_json_content_type(content_type) is is_json


@pytest.mark.parametrize("content_type", ["text/json", "application/vnd.acme.event+json"])
def test_every_json_content_type_gets_json_escaping(content_type: str) -> None:
    hostile = {"data": {"name": 'x", "admin": true, "y": "'}}
    body = render('{"name": "[data.name]"}', hostile, content_type=content_type)
    assert json.loads(body) == {"name": hostile["data"]["name"]}


@pytest.mark.parametrize(
    ("content_type", "syntax"),
    [
        ("application/json", "json"),
        ("application/vnd.api+json; charset=utf-8", "json"),
        ("application/x-www-form-urlencoded", "form"),
        ("Application/XML", "xml"),
        ("text/xml; charset=utf-8", "xml"),
        ("application/soap+xml", "xml"),
        ("text/plain", "text"),
        ("text/csv", "text"),
    ],
)
def test_syntax_of(content_type: str, syntax: str) -> None:
    assert syntax_of(content_type) == syntax


def test_form_values_cannot_add_fields() -> None:
    envelope = {"type": "a.b", "data": {"name": "x&admin=1 y", "n": 5}}
    body = render(
        "type=[type]&name=[data.name]&n=[data.n]&missing=[data.no]",
        envelope,
        content_type="application/x-www-form-urlencoded",
    )
    assert body == b"type=a.b&name=x%26admin%3D1+y&n=5&missing="


def test_xml_values_cannot_open_elements() -> None:
    envelope = {"data": {"name": '</name><admin>1</admin> & "q"'}}
    body = render('<e name="[data.name]">[data.name]</e>', envelope, content_type="text/xml")
    assert body == (
        b'<e name="&lt;/name&gt;&lt;admin&gt;1&lt;/admin&gt; &amp; &quot;q&quot;">'
        b"&lt;/name&gt;&lt;admin&gt;1&lt;/admin&gt; &amp; &quot;q&quot;</e>"
    )
