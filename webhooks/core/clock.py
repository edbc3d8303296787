"""The current time, from one place so tests can freeze it."""

from datetime import UTC, datetime


def now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    """Format as the API's RFC 3339 UTC form with a ``Z``: ``2026-11-22T10:00:00Z``."""
    text = value.astimezone(UTC).isoformat(
        timespec="milliseconds" if value.microsecond else "seconds"
    )
    return text.replace("+00:00", "Z")
