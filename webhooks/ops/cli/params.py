"""Parameter types shared by several command groups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click


class _Time(click.ParamType):  # type: ignore[type-arg]
    """An RFC 3339 time with an offset (``2026-11-22T10:00:00Z``)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.fail(f"{value!r} is not an RFC 3339 time with an offset", param, ctx)
        return parsed


TIME = _Time()

#: The default and the bounds of ``--limit``, as the API's ``?limit=``.
LIMIT = click.option(
    "--limit",
    type=click.IntRange(1, 250),
    default=50,
    show_default=True,
    help="Most rows shown, newest first.",
)
