"""The rate limiter's spacing rule, as properties over any sequence of requests for slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from webhooks.delivery import rate_limit
from webhooks.delivery.rate_limit import HORIZON, interval, take

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

rates = st.floats(min_value=rate_limit.MIN_RATE, max_value=rate_limit.MAX_RATE)
#: A worker asking for slots: how long after the previous request, and how many it wants.
requests = st.lists(
    st.tuples(st.floats(min_value=0, max_value=30), st.integers(min_value=0, max_value=50)),
    min_size=1,
    max_size=40,
)


def run(rate: float, asks: list[tuple[float, int]]) -> list[tuple[datetime, list[datetime]]]:
    """Every request in turn, the endpoint's next free slot carried from one to the next."""
    next_free: datetime | None = None
    now = START
    given_out = []
    for gap, count in asks:
        now += timedelta(seconds=gap)
        slots, next_free = take(next_free, now, rate, count=count, horizon=HORIZON)
        given_out.append((now, slots))
    return given_out


@given(rates, requests)
def test_slots_are_never_closer_than_the_interval(
    rate: float, asks: list[tuple[float, int]]
) -> None:
    every = [slot for _, slots in run(rate, asks) for slot in slots]
    assert all(b - a >= interval(rate) for a, b in pairwise(every))


@given(rates, requests)
def test_no_slot_is_in_the_past_or_beyond_the_horizon(
    rate: float, asks: list[tuple[float, int]]
) -> None:
    for now, slots in run(rate, asks):
        assert all(now <= slot < now + HORIZON for slot in slots)


@given(rates, requests, st.floats(min_value=0.001, max_value=60))
def test_no_window_holds_more_than_its_share(
    rate: float, asks: list[tuple[float, int]], width: float
) -> None:
    """However the requests come, a window of ``w`` seconds holds at most ``w * rate`` sends,
    plus the one at its very start: never a burst of saved-up quota."""
    every = [slot for _, slots in run(rate, asks) for slot in slots]
    window = timedelta(seconds=width)
    for index, first in enumerate(every):
        inside = sum(1 for slot in every[index:] if slot < first + window)
        assert inside <= width * rate + 1


@given(rates, requests)
def test_a_request_gets_what_it_asks_for_within_the_horizon(
    rate: float, asks: list[tuple[float, int]]
) -> None:
    """Slots are consecutive from the first free one: a request is only cut short by the
    horizon, and idle time is not saved up (the first slot after a pause is now)."""
    next_free: datetime | None = None
    now = START
    for gap, count in asks:
        now += timedelta(seconds=gap)
        first = now if next_free is None or next_free < now else next_free
        slots, after = take(next_free, now, rate, count=count, horizon=HORIZON)
        if slots:
            assert slots[0] == first
            assert after == slots[-1] + interval(rate)
            next_free = after
        if len(slots) < count:  # cut short: the next slot would be beyond the horizon
            following = slots[-1] + interval(rate) if slots else first
            assert following >= now + HORIZON


@given(rates)
def test_the_interval_never_rounds_the_rate_up(rate: float) -> None:
    assert interval(rate).total_seconds() * rate >= 1
    assert interval(rate) - timedelta(seconds=1 / rate) <= timedelta(microseconds=1)
