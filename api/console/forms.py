"""Form fields: what the console's forms show, and how a posted value becomes an API value.

The endpoint form is built from :data:`ENDPOINT_FIELDS`, one line per endpoint field: adding a
field to the API adds one line here (its kind says how it is shown and parsed). Parsed values
then go through the API's own marshmallow schema and :mod:`webhooks.admin.endpoints`, so the
console shows exactly the API's validation messages, next to the field they name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict

from api.errors import flatten
from webhooks.core.errors import InvalidInput
from webhooks.core.redaction import mask_headers
from webhooks.outbound import signing

#: How a field is shown and read. ``secret`` and ``secret_json`` carry credentials: never shown,
#: left empty to keep what is stored. ``headers`` is a JSON object of header values shown with
#: credential-like ones masked, as the API shows them (a masked value posted back is kept).
Kind = Literal[
    "text",
    "textarea",
    "checkbox",
    "choice",
    "lines",
    "json",
    "headers",
    "integers",
    "number",
    "decimal",
    "secret",
    "secret_json",
]

#: A field left out of the values sent on (an empty secret keeps the current one).
OMIT = object()


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: Kind = "text"
    help: str = ""
    #: The values a ``choice`` offers.
    choices: tuple[str, ...] = ()

    def parse(self, form: MultiDict[str, str]) -> Any:
        """The posted value as the API takes it; :class:`InvalidInput` if it cannot be."""
        raw = form.get(self.name, "")
        if self.kind == "checkbox":
            return self.name in form
        if self.kind == "secret":
            return raw or OMIT
        if self.kind == "lines":
            return [line.strip() for line in raw.splitlines() if line.strip()]
        if not raw.strip():
            return OMIT if self.kind == "secret_json" else None  # None: the field's default
        if self.kind in ("json", "headers", "secret_json"):
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise InvalidInput(f"not valid JSON: {exc}", field=self.name) from None
        if self.kind == "decimal":
            try:
                return float(raw)
            except ValueError:
                raise InvalidInput("must be a number", field=self.name) from None
        if self.kind in ("integers", "number"):
            try:
                numbers = [int(part) for part in raw.replace(",", " ").split()]
            except ValueError:
                plural = "whole numbers" if self.kind == "integers" else "a whole number"
                raise InvalidInput(f"must be {plural}", field=self.name) from None
            return numbers if self.kind == "integers" else numbers[0]
        return raw

    def posted(self, form: MultiDict[str, str]) -> Any:
        """What the form held when posted, to show again beside its errors (secrets not)."""
        if self.kind == "checkbox":
            return self.name in form
        return "" if self.kind in ("secret", "secret_json") else form.get(self.name, "")

    def show(self, value: Any) -> Any:
        """A stored value as the form shows it (a secret is never shown)."""
        if self.kind == "checkbox":
            return bool(value)
        if value is None or self.kind in ("secret", "secret_json"):
            return ""
        if self.kind == "lines":
            return "\n".join(value)
        if self.kind == "json":
            return json.dumps(value, indent=2) if value else ""
        if self.kind == "headers":
            return json.dumps(mask_headers(value), indent=2) if value else ""
        if self.kind == "integers":
            return ", ".join(str(number) for number in value)
        return str(value)


ENDPOINT_FIELDS: tuple[FormField, ...] = (
    FormField("url", "URL", help="https:// (http:// where the operator allows it)"),
    FormField("description", "Description", "textarea"),
    FormField("event_types", "Event types", "lines", "One type or prefix.* per line; none: all"),
    FormField("enabled", "Enabled", "checkbox", "A paused endpoint keeps its deliveries waiting"),
    FormField("secret", "Signing secret", "secret", "Empty: generated (new) or unchanged (edit)"),
    FormField("signature_header", "Signature header", help="Extra header with the hex HMAC"),
    FormField("api_key_header", "API key header", help="e.g. X-api-key"),
    FormField("api_key", "API key", "secret", "Empty on edit: unchanged"),
    FormField("headers", "Custom headers", "headers", 'A JSON object: {"X-Source": "webhooks"}'),
    FormField("content_type", "Content-Type", help="Default: application/json"),
    FormField("template", "Body template", "textarea", "[path] placeholders; empty: the envelope"),
    FormField("retry_schedule", "Retry schedule", "integers", "Seconds before each retry"),
    FormField("timeout_seconds", "Timeout (seconds)", "number", "1 to 30; default 10"),
    FormField("signing", "Signing", "choice", "ed25519: v1a, verified with a public key",
              choices=signing.SCHEMES),
    FormField("auth", "Receiver authentication", "secret_json",
              'JSON, e.g. {"type": "bearer", "token": "…"}; null: none; empty on edit: unchanged'),
    FormField("client_certificate", "Client certificate (mutual TLS)", "secret_json",
              '{"cert": "PEM chain", "key": "PEM key"}; null: none; empty on edit: unchanged'),
)  # fmt: skip


def parse(
    fields: Iterable[FormField], form: MultiDict[str, str], schema: Schema
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The values of ``fields`` loaded through the API's ``schema``, and errors by field."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field in fields:
        try:
            value = field.parse(form)
        except InvalidInput as exc:
            add_error(errors, exc)
            continue
        if value is not OMIT:
            values[field.name] = value
    if errors:
        return {}, errors
    try:
        return schema.load(values), {}
    except ValidationError as exc:
        for error in flatten(exc.messages):
            add_error(errors, InvalidInput(str(error["message"]), field=error["field"]))
        return {}, errors


def add_error(errors: dict[str, list[str]], exc: InvalidInput) -> None:
    """File ``exc`` under the top-level field it names (``headers.X-Foo`` → ``headers``)."""
    field = "" if exc.field is None else exc.field.split(".", 1)[0]
    errors.setdefault(field, []).append(str(exc))


def utc_time(value: str) -> str:
    """A ``datetime-local`` input (read as UTC) as the RFC 3339 time the API takes."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value  # the API's schema says what is wrong with it
    if parsed.tzinfo is not None:
        return value
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def query_values(args: Mapping[str, str], times: Iterable[str] = ()) -> dict[str, str]:
    """A GET form's filled-in values (empty inputs dropped), its times as RFC 3339."""
    chosen = {name: value for name, value in args.items() if value.strip()}
    for name in times:
        if name in chosen:
            chosen[name] = utc_time(chosen[name])
    return chosen
