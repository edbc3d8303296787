"""When to try a failed delivery again.

The default schedule, used when an endpoint sets no ``retry_schedule``: the delay before each
retry, in seconds, each stretched or shrunk at random by up to 20 % so that the deliveries
that failed together (a receiver's outage) do not all come back in the same second::

    retry      1   2    3     4      5      6      7       8       9      10      11      12
    delay      5s  30s  2m    10m    30m    1h     2h      4h      8h     12h     12h     12h
    elapsed    5s  35s  2.6m  12.6m  42.6m  1.7h   3.7h    7.7h   15.7h   27.7h   39.7h   51.7h

That is 13 attempts over about 52 hours (42 to 62 with the jitter): the first retry comes
within seconds, for blips, and the last over two days later, which gives a receiver a weekend
night or a long deploy to recover. An endpoint's own ``retry_schedule`` is used verbatim,
without jitter (its owner chose those numbers); ``[]`` means a single attempt.

``Retry-After`` (on 429 and 503 only, where HTTP gives it that meaning) may lengthen a wait
but never shorten it: the schedule is the least a receiver gets between attempts, whatever it
asks for, and a receiver cannot hold a delivery for more than :data:`MAX_RETRY_AFTER`
(one hour) per attempt, which keeps every due time within the schedule's order of magnitude.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

DEFAULT_SCHEDULE: tuple[int, ...] = (
    5,
    30,
    2 * 60,
    10 * 60,
    30 * 60,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    12 * 3600,
    12 * 3600,
    12 * 3600,
)

JITTER = 0.2
"""The default schedule's delays vary by up to this fraction either way."""

MAX_RETRY_AFTER = 3600.0
"""The longest wait, in seconds, a receiver's ``Retry-After`` can ask for."""

RETRY_AFTER_STATUSES = frozenset({429, 503})


def next_delay(
    schedule: Sequence[int | float] | None,
    attempts_made: int,
    *,
    retry_after: float | None,
    rng: random.Random,
) -> float | None:
    """Seconds to wait before the next attempt, or None when there is none left.

    ``attempts_made`` counts the attempts so far, the one that just failed included.
    ``retry_after`` is the receiver's ``Retry-After`` in seconds (see
    :func:`parse_retry_after`), None when it sent none or it does not apply.
    """
    index = attempts_made - 1
    if schedule is None:
        if index >= len(DEFAULT_SCHEDULE):
            return None
        delay = DEFAULT_SCHEDULE[index] * rng.uniform(1 - JITTER, 1 + JITTER)
    else:
        if index >= len(schedule):
            return None
        delay = float(schedule[index])
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now``; None if absent or unreadable.

    The header is either a number of seconds or an HTTP date (RFC 9110 §10.2.3). A date in
    the past means "now" (0). Anything else is ignored rather than trusted.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": no zone given, and HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
