"""Path parameters: only what could name something reaches a lookup.

A path segment that cannot be a tenant uid, an object id or an event type name matches no
route, so it is a plain 404 and never becomes a query (where, for instance, a NUL character
would be a database error rather than "not found"). The patterns are also documented in the
OpenAPI document, so that clients and fuzzers see what a valid segment looks like.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.routing import BaseConverter

from api.fields import anchored
from webhooks.admin.tenants import UID_PATTERN
from webhooks.core.ids import ID_PATTERN
from webhooks.ingest.event_names import NAME_PATTERN


class _PatternConverter(BaseConverter):
    """A converter matching ``pattern``: subclasses name the pattern, werkzeug gets its text."""

    pattern: re.Pattern[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.regex = cls.pattern.pattern

    def doc(self) -> dict[str, str]:
        return {"type": "string", "pattern": anchored(self.pattern)}


class TenantRef(_PatternConverter):
    """A tenant's uid or id (an id has the shape of a uid too)."""

    pattern = UID_PATTERN


class ObjectId(_PatternConverter):
    """A prefixed ULID such as ``ep_01JD3Z...``."""

    pattern = ID_PATTERN


class EventTypeName(_PatternConverter):
    pattern = NAME_PATTERN


#: The name each converter has in route rules (``<tenant:tenant>``).
CONVERTERS: dict[str, type[_PatternConverter]] = {
    "tenant": TenantRef,
    "id": ObjectId,
    "event_type": EventTypeName,
}
