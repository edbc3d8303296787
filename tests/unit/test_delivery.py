"""Outcome of a request (through the real transport, ``responses`` standing in for the
receiver) to the delivery's next step: done, retry when, or dead letter."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses

from webhooks.broker.publishing import MAX_COUNTDOWN, DeliveryRef
from webhooks.delivery.retry import MAX_RETRY_AFTER
from webhooks.delivery.state import Next, after_attempt
from webhooks.outbound.http import Transport
from webhooks.outbound.outcome import Outcome
from webhooks.outbound.ssrf import TargetPolicy

URL = "https://receiver.example/hook"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def transport() -> Iterator[Transport]:
    sender = Transport(TargetPolicy(), user_agent="webhooks/test")
    with responses.RequestsMock() as mock:
        sender.mock = mock  # type: ignore[attr-defined]
        yield sender
    sender.close()


def answer(transport: Transport, **response: Any) -> Outcome:
    transport.mock.add(responses.POST, URL, **response)  # type: ignore[attr-defined]
    return transport.post(URL, {"Content-Type": "application/json"}, b"{}", 5)


def step_for(outcome: Outcome, schedule: list[int] | None = None, number: int = 1) -> Any:
    ref = DeliveryRef("dlv_1", "ep_1", "booking.created", number - 1)
    transition = after_attempt(ref, number, schedule, outcome, now=NOW, rng=random.Random(7))
    return transition.step


def test_2xx_is_done(transport: Transport) -> None:
    outcome = answer(transport, status=204)
    assert outcome.ok
    assert step_for(outcome).action is Next.NOTHING


@pytest.mark.parametrize("status", [400, 404, 500, 502])
def test_other_statuses_retry_on_the_schedule(transport: Transport, status: int) -> None:
    step = step_for(answer(transport, status=status), schedule=[0, 30, 3600], number=2)
    assert step.action is Next.RETRY and step.delay == 30
    assert step.delivery == DeliveryRef("dlv_1", "ep_1", "booking.created", 2)
    assert step.rides_countdown


def test_a_long_retry_is_left_to_the_sweeper(transport: Transport) -> None:
    step = step_for(answer(transport, status=500), schedule=[MAX_COUNTDOWN + 1])
    assert step.action is Next.RETRY and not step.rides_countdown


def test_redirect_is_a_failure_not_followed(transport: Transport) -> None:
    outcome = answer(transport, status=302, headers={"Location": "https://elsewhere.example/"})
    assert (outcome.status, outcome.error, outcome.ok) == (302, "redirect", False)
    assert step_for(outcome, schedule=[1]).action is Next.RETRY
    assert len(transport.mock.calls) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (requests.ConnectTimeout("slow"), "timeout"),
        (requests.ReadTimeout("slow"), "timeout"),
        (requests.ConnectionError("refused"), "connection"),
        (requests.exceptions.SSLError("bad cert"), "tls"),
    ],
)
def test_errors_are_classified_and_retried(
    transport: Transport, raised: Exception, error: str
) -> None:
    outcome = answer(transport, body=raised)
    assert (outcome.status, outcome.error) == (None, error)
    assert step_for(outcome, schedule=[5]).action is Next.RETRY


def test_after_the_last_attempt_comes_the_dead_letter(transport: Transport) -> None:
    step = step_for(answer(transport, status=500), schedule=[0, 1, 1], number=4)
    assert step.action is Next.DEAD_LETTER
    assert step.delivery is not None and step.delivery.attempts == 4


def test_single_attempt_schedule(transport: Transport) -> None:
    assert step_for(answer(transport, status=500), schedule=[]).action is Next.DEAD_LETTER


def test_default_schedule_with_jitter(transport: Transport) -> None:
    step = step_for(answer(transport, status=500), number=3)
    assert 96 <= step.delay <= 144  # 2 minutes, +-20 %


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_on_429_and_503(transport: Transport, status: int) -> None:
    step = step_for(answer(transport, status=status, headers={"Retry-After": "90"}), schedule=[5])
    assert step.delay == 90
    date = format_datetime(NOW + timedelta(minutes=10), usegmt=True)
    step = step_for(answer(transport, status=status, headers={"retry-after": date}), schedule=[5])
    assert step.delay == 600


def test_retry_after_is_capped(transport: Transport) -> None:
    step = step_for(answer(transport, status=429, headers={"Retry-After": "999999"}), schedule=[5])
    assert step.delay == MAX_RETRY_AFTER


def test_retry_after_is_ignored_on_other_statuses_and_when_garbage(transport: Transport) -> None:
    assert (
        step_for(answer(transport, status=500, headers={"Retry-After": "90"}), schedule=[5]).delay
        == 5
    )
    assert (
        step_for(
            answer(transport, status=429, headers={"Retry-After": "later"}), schedule=[5]
        ).delay
        == 5
    )
