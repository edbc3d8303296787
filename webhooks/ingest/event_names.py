"""Event type names and the endpoint filters that select them.

A name is dot-separated segments (``booking.created``, ``traveller.profile.updated``). A filter
is a name, or a prefix followed by ``.*``, which matches every name below that prefix
(``booking.*`` matches ``booking.created`` and ``booking.x.y``, not ``booking`` or
``bookings.x``). An endpoint with no filters receives every type.
"""

import re
from collections.abc import Sequence

from webhooks.core.dialects import Dialect
from webhooks.core.errors import InvalidInput

_SEGMENT = r"[A-Za-z0-9_-]+"
NAME_PATTERN = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
FILTER_PATTERN = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*(?:\.\*)?")
MAX_LENGTH = 200


def validate_name(name: str, field: str = "type") -> str:
    """Check an event type name's syntax."""
    if len(name) > MAX_LENGTH or not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not an event type name: dot-separated segments of letters, digits, "
            f"'_' or '-', at most {MAX_LENGTH} characters",
            field=field,
        )
    return name


def validate_filters(filters: Sequence[str], field: str = "event_types") -> list[str]:
    """Check an endpoint's filters (names or ``prefix.*``); returns them deduplicated."""
    for pattern in filters:
        if len(pattern) > MAX_LENGTH or not FILTER_PATTERN.fullmatch(pattern):
            raise InvalidInput(
                f"{pattern!r} is neither an event type name nor a 'prefix.*' pattern",
                field=field,
            )
    return list(dict.fromkeys(filters))


def matching_sql(db: Dialect, filters: str) -> str:
    """Whether an endpoint whose filters are the JSON array ``filters`` (SQL) receives events
    of type ``:type``: it has no filters, one is the name, or one is a ``prefix.*`` whose
    prefix with its dot starts the name.

    The only definition of matching: ingestion runs it in the database on both storage
    paths, so that the Postgres path can find the endpoints and write in one statement.
    """
    name = "CAST(:type AS text)"
    return f"""(
        NOT EXISTS (SELECT 1 FROM {db.elements(filters)})
        OR EXISTS (SELECT 1 FROM {db.elements(filters)}
                   WHERE f.value = {name}
                      OR (substr(f.value, length(f.value) - 1) = '.*'
                          AND substr({name}, 1, length(f.value) - 1)
                              = substr(f.value, 1, length(f.value) - 1)))
    )"""
