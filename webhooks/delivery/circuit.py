"""The circuit breaker's rule, as pure functions over an endpoint's circuit.

After :data:`THRESHOLD` failed attempts in a row the circuit opens: the endpoint's deliveries
wait, using up no attempt, for a cool-down (:data:`FIRST_COOLDOWN`, doubling on every failed
probe up to :data:`MAX_COOLDOWN`). Once it has passed, one delivery is let through as the
probe (``half_open``, held for the probe's lease): a success closes the circuit and the
waiting deliveries go out; a failure opens it again for twice as long. A probe whose worker
died lets another through when its lease ends.

Any success closes the circuit, not only the probe's: an attempt that was already in flight
when the circuit opened and then succeeded shows the receiver is back. A failure that is not
the probe's (one in flight as it opened) only counts.

The state is four columns of the endpoint row (``circuit``, ``circuit_failures``,
``circuit_until``, ``circuit_cooldown``), changed only under that row's lock, so concurrent
workers count every failure and let exactly one probe through.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from webhooks.models import Endpoint

THRESHOLD = 10
"""Failed attempts in a row that open the circuit."""

FIRST_COOLDOWN = 30
"""Seconds the circuit stays open the first time."""

MAX_COOLDOWN = 600
"""Longest cool-down, in seconds, however many probes failed."""


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Circuit:
    """An endpoint's circuit as stored."""

    state: CircuitState = CircuitState.CLOSED
    #: Failed attempts since the last success.
    failures: int = 0
    #: Open: the end of the cool-down. Half open: the end of the probe's lease.
    until: datetime | None = None
    #: The current cool-down in seconds (None while closed).
    cooldown: int | None = None

    def shown(self, now: datetime) -> CircuitState:
        """What the API shows: ``half_open`` as soon as the cool-down is over (the probe is
        due or on its way), ``open`` while it cools down."""
        if self.state is CircuitState.OPEN and self.until is not None and self.until <= now:
            return CircuitState.HALF_OPEN
        return self.state

    def admits(self, now: datetime) -> bool:
        """Whether a delivery may be sent now: closed, or the probe's turn has come."""
        return self.state is CircuitState.CLOSED or (self.until is not None and self.until <= now)

    def probing(self, now: datetime, lease: timedelta) -> Circuit:
        """The circuit once a delivery has been let through as the probe (see :meth:`admits`)."""
        if self.state is CircuitState.CLOSED:
            return self
        return replace(self, state=CircuitState.HALF_OPEN, until=now + lease)


def after_attempt(circuit: Circuit, *, ok: bool, now: datetime) -> Circuit:
    """The circuit after an attempt that succeeded (``ok``) or failed."""
    if ok:
        return Circuit()
    failures = circuit.failures + 1
    if circuit.state is CircuitState.HALF_OPEN:  # the probe failed: open for twice as long
        cooldown = min(2 * (circuit.cooldown or FIRST_COOLDOWN), MAX_COOLDOWN)
        return Circuit(CircuitState.OPEN, failures, now + timedelta(seconds=cooldown), cooldown)
    if circuit.state is CircuitState.CLOSED and failures >= THRESHOLD:
        until = now + timedelta(seconds=FIRST_COOLDOWN)
        return Circuit(CircuitState.OPEN, failures, until, FIRST_COOLDOWN)
    return replace(circuit, failures=failures)


def circuit_of(endpoint: Endpoint) -> Circuit:
    """The circuit as the endpoint row stores it."""
    return Circuit(
        CircuitState(endpoint.circuit),
        endpoint.circuit_failures,
        endpoint.circuit_until,
        endpoint.circuit_cooldown,
    )
