"""``?since=&until=`` on history lists: a time window on top of the page arguments."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, validates_schema

from api.fields import Timestamp
from api.pagination import PageArgs
from webhooks.history.queries import Window


class WindowArgs(PageArgs):
    """``since``/``until`` (RFC 3339), both inclusive; ``since`` after ``until`` is a 422."""

    since = Timestamp(metadata={"description": "Only items from this time on (RFC 3339)"})
    until = Timestamp(metadata={"description": "Only items up to this time (RFC 3339)"})

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since > until:
            raise ValidationError("Must not be before since.", "until")


def window(args: dict[str, Any]) -> Window:
    """The :class:`Window` of parsed :class:`WindowArgs`."""
    return Window(args.get("since"), args.get("until"))
