"""The circuit breaker's rule: open after 10 failures in a row, cool down 30 s doubling to
10 min, one probe, close on success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from webhooks.delivery.circuit import (
    FIRST_COOLDOWN,
    MAX_COOLDOWN,
    THRESHOLD,
    Circuit,
    CircuitState,
    after_attempt,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=45)


def fail(circuit: Circuit, times: int, at: datetime = T0) -> Circuit:
    for _ in range(times):
        circuit = after_attempt(circuit, ok=False, now=at)
    return circuit


def test_it_opens_on_the_tenth_failure_in_a_row_only() -> None:
    circuit = fail(Circuit(), THRESHOLD - 1)
    assert circuit.state is CircuitState.CLOSED and circuit.failures == THRESHOLD - 1
    assert circuit.admits(T0)
    circuit = after_attempt(circuit, ok=True, now=T0)
    assert circuit == Circuit()
    circuit = fail(circuit, THRESHOLD)
    assert circuit.state is CircuitState.OPEN
    assert circuit.until == T0 + timedelta(seconds=FIRST_COOLDOWN)
    assert circuit.cooldown == FIRST_COOLDOWN


def test_open_admits_nothing_until_the_cool_down_is_over_then_one_probe() -> None:
    circuit = fail(Circuit(), THRESHOLD)
    cooled = T0 + timedelta(seconds=FIRST_COOLDOWN)
    assert not circuit.admits(cooled - timedelta(milliseconds=1))
    assert circuit.shown(cooled - timedelta(milliseconds=1)) is CircuitState.OPEN
    assert circuit.admits(cooled)
    assert circuit.shown(cooled) is CircuitState.HALF_OPEN
    probing = circuit.probing(cooled, LEASE)
    assert probing.state is CircuitState.HALF_OPEN
    assert not probing.admits(cooled + LEASE - timedelta(milliseconds=1))
    # A probe whose worker died: another goes when its lease is over.
    assert probing.admits(cooled + LEASE)


def test_a_failed_probe_doubles_the_cool_down_up_to_ten_minutes() -> None:
    circuit = fail(Circuit(), THRESHOLD)
    now = T0
    cooldowns = []
    for _ in range(8):
        assert circuit.until is not None
        now = circuit.until
        circuit = after_attempt(circuit.probing(now, LEASE), ok=False, now=now)
        assert circuit.state is CircuitState.OPEN
        assert circuit.until == now + timedelta(seconds=circuit.cooldown or 0)
        cooldowns.append(circuit.cooldown)
    assert cooldowns == [60, 120, 240, 480, MAX_COOLDOWN, MAX_COOLDOWN, MAX_COOLDOWN, 600]


def test_a_successful_probe_closes_it() -> None:
    circuit = fail(Circuit(), THRESHOLD)
    assert circuit.until is not None
    probing = circuit.probing(circuit.until, LEASE)
    assert after_attempt(probing, ok=True, now=circuit.until) == Circuit()


def test_a_failure_in_flight_while_open_only_counts() -> None:
    circuit = fail(Circuit(), THRESHOLD)
    later = fail(circuit, 1, T0 + timedelta(seconds=5))
    assert later.state is CircuitState.OPEN
    assert later.until == circuit.until and later.cooldown == circuit.cooldown
    assert later.failures == THRESHOLD + 1


def test_closed_is_not_changed_by_probing() -> None:
    assert Circuit().probing(T0, LEASE) == Circuit()
    assert Circuit().shown(T0) is CircuitState.CLOSED
