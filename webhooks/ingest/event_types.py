"""The optional catalogue of event types: names, descriptions and payload schemas.

A tenant may declare the types it sends, each with a JSON Schema; ingestion then refuses a
payload that does not match its type's schema. Types not in the
catalogue are accepted as they come: the catalogue documents and guards, it does not gate.
"""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT3, DRAFT4, DRAFT202012, specification_with
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webhooks.core.errors import Conflict, InvalidInput, NotFound
from webhooks.ingest.event_names import validate_name
from webhooks.models import EventType


def check_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse a ``schema`` that is not itself a valid JSON Schema (of its ``$schema``)."""
    if schema is None:
        return None
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"/{part}" for part in exc.path)
        raise InvalidInput(
            f"schema is not a valid JSON Schema: {exc.message} (at '{path or '/'}')",
            field="schema",
        ) from None
    _check_references(schema)
    return schema


#: Keywords whose values are instances (data), not subschemas: a "$ref" in them is no reference.
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})


def _check_references(schema: dict[str, Any]) -> None:
    """Every ``$ref`` must resolve inside the schema itself.

    Nothing is ever fetched to validate a payload, so a reference to another document, or to
    a part of this one that does not exist, would fail every event of the type; better to
    refuse it now. References resolve against the closest enclosing ``$id``, as they do when
    payloads are validated.
    """
    specification = specification_with(schema.get("$schema", ""), default=DRAFT202012)
    # Only a string under the id keyword is an id: {"properties": {"id": {...}}} names a property.
    id_keyword = "id" if specification in (DRAFT3, DRAFT4) else "$id"
    root: Any = schema
    pending = [(root, Registry().resolver_with_root(specification.create_resource(schema)))]
    while pending:
        node, resolver = pending.pop()
        if isinstance(node, list):
            pending.extend((item, resolver) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get(id_keyword), str):
            resolver = resolver.in_subresource(specification.create_resource(node))
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                try:
                    resolver.lookup(value)
                except Unresolvable:
                    raise InvalidInput(
                        f"schema: $ref {value!r} does not resolve within the schema",
                        field="schema",
                    ) from None
            elif key not in _DATA_KEYWORDS:
                pending.append((value, resolver))


def _validator_class(schema: dict[str, Any]) -> Any:
    """The validator of the schema's ``$schema`` dialect, the latest draft if it names none.

    Left to itself ``validator_for`` checks a schema of an unknown dialect against the latest
    draft with a warning, and fails with a TypeError on a non-string ``$schema``; a typo
    there deserves a clear refusal instead.
    """
    if "$schema" not in schema:
        return validator_for(schema)
    dialect = schema["$schema"]
    validator = validator_for(schema, default=None) if isinstance(dialect, str) else None
    if validator is None:
        raise InvalidInput(
            f"$schema {dialect!r} is not a JSON Schema dialect known here", field="schema.$schema"
        )
    return validator


def create_event_type(
    session: Session,
    tenant_id: str,
    name: str,
    *,
    description: str = "",
    schema: dict[str, Any] | None = None,
) -> EventType:
    """Add a type to a tenant's catalogue; :class:`Conflict` if the name is taken."""
    event_type = EventType(
        tenant_id=tenant_id,
        name=validate_name(name, field="name"),
        description=description,
        schema=check_schema(schema),
    )
    session.add(event_type)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"an event type named {name!r} exists") from None
    return event_type


def update_event_type(event_type: EventType, changes: dict[str, Any]) -> EventType:
    """Change ``description`` and/or ``schema`` (None removes the schema)."""
    if "description" in changes:
        event_type.description = changes["description"] or ""
    if "schema" in changes:
        event_type.schema = check_schema(changes["schema"])
    return event_type


def event_types_query(tenant_id: str) -> Select[EventType]:
    """A tenant's event types (to page through)."""
    return select(EventType).where(EventType.tenant_id == tenant_id)


def get_event_type(session: Session, tenant_id: str, name: str) -> EventType:
    """The tenant's type called ``name``; :class:`NotFound` otherwise."""
    event_type = session.scalar(event_types_query(tenant_id).where(EventType.name == name))
    if event_type is None:
        raise NotFound(f"no event type {name!r}")
    return event_type
