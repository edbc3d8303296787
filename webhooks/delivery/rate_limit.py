"""Per-endpoint rate limits: the spacing rule of an endpoint's send slots.

An endpoint limited to ``r`` deliveries a second sends at most one every ``1/r`` seconds, across
every worker process and host: its row holds the next free send slot (``next_send_at``), and
a delivery goes out only in a slot it took, moving the next free slot on by one interval under
the row's lock. Slots are never saved up: an endpoint idle for a minute does not earn a burst
of a minute's quota, its next slot is simply now. So the sends are spaced smoothly, never a
whole second's quota at once.

A delivery that finds no free slot now is given one ahead of time, if the slot is within the
:data:`HORIZON` (it then waits in the broker as a countdown); else it is parked and given a
slot later, by whatever releases waiting deliveries (:mod:`webhooks.delivery.waiting`). Either
way a waiting delivery uses up no attempt. It goes in its slot, or up to :func:`grace` after
it (a message is never exactly on time); a delivery later than that takes a new slot.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

HORIZON = timedelta(seconds=15)
"""How far ahead slots are handed out (the sweeps in between keep the next ones coming)."""

MIN_GRACE = timedelta(milliseconds=250)
"""The least time after its slot a delivery may still go in it (see :func:`grace`)."""


MIN_RATE = 0.001
"""Slowest limit: one delivery every 1000 seconds."""

MAX_RATE = 10_000.0
"""Fastest limit worth spacing (a tenth of a millisecond)."""


def interval(rate: float) -> timedelta:
    """Time between two sends at ``rate`` a second, rounded up to the microsecond (so the
    limit is never exceeded by rounding)."""
    return timedelta(microseconds=math.ceil(1_000_000 / rate))


def grace(rate: float) -> timedelta:
    """How late after its slot a delivery may still go in it: a quarter of a second, or one
    interval if that is longer. Later (its message was held up), it takes a new slot: a window
    of ``w`` seconds then holds at most ``(w + grace) * rate + 1`` sends however the messages
    arrive, and ordinary lateness (milliseconds) wastes no slot."""
    return max(MIN_GRACE, interval(rate))


def first_free(next_free: datetime | None, now: datetime) -> datetime:
    """The earliest slot: the stored next free one, or now if that has passed."""
    return now if next_free is None or next_free < now else next_free


def take(
    next_free: datetime | None, now: datetime, rate: float, *, count: int, horizon: timedelta
) -> tuple[list[datetime], datetime | None]:
    """Up to ``count`` consecutive slots from the first free one, each before ``now +
    horizon``; returns them with the new next free slot (unchanged when none was taken)."""
    step = interval(rate)
    slot = first_free(next_free, now)
    slots: list[datetime] = []
    while len(slots) < count and slot < now + horizon:
        slots.append(slot)
        slot += step
    return slots, (slot if slots else next_free)
