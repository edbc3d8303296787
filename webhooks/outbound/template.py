"""Body templates: reshaping the event envelope for receivers that expect their own format.

Many receivers cannot take our envelope ``{"id", "type", "timestamp", "data"}`` as it is: a
Slack incoming webhook wants ``{"text": ...}``, a TProfile endpoint wants its own field names.
An endpoint's ``template`` is the body to send, with ``[path]`` placeholders that are replaced
by values from the envelope::

    {"eventType": "[type]", "bookingId": "[data.booking.id]", "booking": [data.booking]}

A path is dotted names into the envelope; a segment of digits indexes into a list
(``[data.items.0.id]``). Anything else in brackets, such as the JSON array ``[1, 2]``, is
literal text.

When the body is JSON, a value must never be able to break the document or inject fields
into it, whatever a producer puts in an event. So a JSON template is scanned lexically and
each placeholder is rendered for where it stands:

* inside a JSON string, the value is inserted JSON-escaped, without quotes (a value that is
  not a string is inserted as its compact JSON text), and a path that does not resolve
  renders as nothing;
* bare, the value is inserted as compact JSON, and a path that does not resolve renders as
  ``null``.

Either way the rendered body is valid JSON if and only if the template rendered against an
empty envelope is, which is what :func:`validate` checks when an endpoint is saved. The same
rule holds for the other syntaxes a content type can name (:func:`syntax_of`): in a form body
values are percent-encoded, in XML they are entity-escaped, and only in other text (strings
as they are, other values as compact JSON) is the template's author responsible.

Parsing a template is cached: an endpoint's template is rendered for every delivery, and the
parse is the only part of rendering that depends on the template alone.
"""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
import xml.sax.saxutils
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from webhooks.core.errors import InvalidInput

#: The longest template accepted, in characters.
MAX_TEMPLATE_LENGTH = 65_536

_PATH = r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"

#: A placeholder anywhere; used when the body is not JSON.
_PLACEHOLDER = re.compile(rf"\[({_PATH})\]")

#: What matters in a JSON template outside strings: a quote opens one.
_OUTSIDE_STRING = re.compile(rf'"|\[({_PATH})\]')

#: What matters inside a JSON string: an escape (skipped, so ``\"`` does not close the
#: string), a quote (which does), or a placeholder.
_INSIDE_STRING = re.compile(rf'\\[\s\S]|"|\[({_PATH})\]')

#: Bare ``[true]``, ``[false]`` and ``[null]`` are JSON arrays, and the envelope has no such
#: top-level keys, so they are left as the arrays they are.
_JSON_LITERALS = frozenset({"true", "false", "null"})


class _Missing:
    """The value of a path that does not resolve."""

    __slots__ = ()


_MISSING: Any = _Missing()


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _escape(text: str) -> str:
    """Return ``text`` escaped for the inside of a JSON string."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _in_string(value: Any) -> str:
    if value is _MISSING:
        return ""
    if isinstance(value, str):
        return _escape(value)
    return _escape(_compact(value))


def _bare(value: Any) -> str:
    return "null" if value is _MISSING else _compact(value)


def _raw(value: Any) -> str:
    if value is _MISSING:
        return ""
    if isinstance(value, str):
        return value
    return _compact(value)


def _form(value: Any) -> str:
    """A value inside ``application/x-www-form-urlencoded``: it cannot add or end a field."""
    return urllib.parse.quote_plus(_raw(value))


def _xml(value: Any) -> str:
    """A value inside XML text or an attribute: it cannot open or close an element."""
    return xml.sax.saxutils.escape(_raw(value), {'"': "&quot;", "'": "&apos;"})


#: How a placeholder renders in a body that is not JSON, by the body's syntax.
_TEXT_FORMATS: dict[str, Callable[[Any], str]] = {"form": _form, "xml": _xml, "text": _raw}


def syntax_of(content_type: str) -> str:
    """The syntax a body of ``content_type`` has: ``json``, ``form``, ``xml`` or ``text``.

    Placeholders are escaped for that syntax, so a value can never change the structure of
    the body around it (a quote cannot end a JSON string, ``&`` cannot add a form field).
    """
    if is_json_content_type(content_type):
        return "json"
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        return "form"
    if media_type in ("application/xml", "text/xml") or media_type.endswith("+xml"):
        return "xml"
    return "text"


class _Placeholder(NamedTuple):
    path: tuple[str, ...]
    format: Callable[[Any], str]
    source: str  # the ``[path]`` text, so that positions can be mapped back to the template


_Segment = str | _Placeholder


def _placeholder(match: re.Match[str], format: Callable[[Any], str]) -> _Placeholder:
    return _Placeholder(tuple(match.group(1).split(".")), format, match.group())


@functools.lru_cache(maxsize=256)
def _parse(template: str, syntax: str) -> tuple[_Segment, ...]:
    """Split a template into literal text and placeholders, each knowing how to render."""
    segments: list[_Segment] = []
    literal_start = 0
    if syntax != "json":
        for match in _PLACEHOLDER.finditer(template):
            if match.start() > literal_start:
                segments.append(template[literal_start : match.start()])
            segments.append(_placeholder(match, _TEXT_FORMATS[syntax]))
            literal_start = match.end()
    else:
        in_string = False
        pos = 0
        while token := (_INSIDE_STRING if in_string else _OUTSIDE_STRING).search(template, pos):
            pos = token.end()
            path = token.group(1)
            if path is None:  # a quote or an escape
                if token.group() == '"':
                    in_string = not in_string
                continue
            if not in_string and path in _JSON_LITERALS:
                continue
            if token.start() > literal_start:
                segments.append(template[literal_start : token.start()])
            segments.append(_placeholder(token, _in_string if in_string else _bare))
            literal_start = pos
    if literal_start < len(template):
        segments.append(template[literal_start:])
    return tuple(segments)


def _resolve(envelope: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = envelope
    for key in path:
        if isinstance(value, Mapping):
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return _MISSING
        elif isinstance(value, list | tuple) and key.isdigit():
            index = int(key)
            if index >= len(value):
                return _MISSING
            value = value[index]
        else:
            return _MISSING
    return value


def _render_text(segments: tuple[_Segment, ...], envelope: Mapping[str, Any]) -> list[str]:
    return [
        segment if isinstance(segment, str) else segment.format(_resolve(envelope, segment.path))
        for segment in segments
    ]


def render(template: str, envelope: Mapping[str, Any], *, content_type: str) -> bytes:
    """Return the request body: ``template`` with its placeholders filled from ``envelope``.

    The body's syntax comes from ``content_type`` (:func:`syntax_of`). In JSON, placeholders
    render according to whether they stand inside a JSON string; in a form or XML body they
    are percent-encoded or entity-escaped; in any other text they are inserted as they are. The
    result is UTF-8; a lone surrogate in a value (which ``json.loads`` accepts from ``\\ud800``)
    is written as its ``\\uXXXX`` escape rather than failing the delivery.
    """
    text = "".join(_render_text(_parse(template, syntax_of(content_type)), envelope))
    return text.encode("utf-8", "backslashreplace")


def validate(template: str, *, content_type: str) -> None:
    """Refuse a template that could not produce a valid body.

    A JSON template must render to valid JSON. Rendering against an empty envelope is enough
    to know: every placeholder inside a string renders as nothing there and every bare one as
    ``null``, and real values only ever replace those with other valid JSON of the same kind.

    :raises InvalidInput: with ``field="template"``, saying where the JSON breaks (line and
        column in the template).
    """
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise InvalidInput(
            f"template is {len(template)} characters long; at most {MAX_TEMPLATE_LENGTH} are"
            " allowed",
            field="template",
        )
    if syntax_of(content_type) != "json":
        return
    segments = _parse(template, "json")
    parts = _render_text(segments, {})
    try:
        json.loads("".join(parts))
    except json.JSONDecodeError as error:
        offset = _template_offset(segments, parts, error.pos)
        line = template.count("\n", 0, offset) + 1
        column = offset - (template.rfind("\n", 0, offset) + 1) + 1
        raise InvalidInput(
            f"template does not render to valid JSON: {error.msg} at line {line} column {column}",
            field="template",
        ) from None


def _template_offset(segments: tuple[_Segment, ...], parts: list[str], rendered: int) -> int:
    """Map an offset in the rendered text back to the template it came from.

    An offset inside a literal maps to the same character of the template; one inside (or
    just after) a rendered placeholder maps to the placeholder's ``[``.
    """
    source_start = rendered_start = 0
    for segment, part in zip(segments, parts, strict=True):
        if rendered < rendered_start + len(part):
            if isinstance(segment, str):
                return source_start + rendered - rendered_start
            return source_start
        source_start += len(segment) if isinstance(segment, str) else len(segment.source)
        rendered_start += len(part)
    return source_start + rendered - rendered_start


#: Media types that are JSON without a ``+json`` suffix (``text/json`` and the old ``x-``
#: spellings are still what some receivers ask for).
_JSON_MEDIA_TYPES = frozenset(
    {"application/json", "text/json", "application/x-json", "text/x-json"}
)


def is_json_content_type(content_type: str) -> bool:
    """Tell whether a ``Content-Type`` is JSON: ``application/json``, ``text/json`` or any
    ``*/*+json``; a JSON body gets JSON escaping, whatever its exact media type says.

    Parameters such as ``charset`` and the case of the media type do not matter.
    """
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type in _JSON_MEDIA_TYPES:
        return True
    main, slash, subtype = media_type.partition("/")
    return bool(main and slash and len(subtype) > len("+json") and subtype.endswith("+json"))
