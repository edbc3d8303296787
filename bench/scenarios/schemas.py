"""Hostile payload schemas: how long a tenant's worst schema can hold a thread.

A tenant's JSON Schema runs on every event it sends, in the API's threads and in
``enqueue_event()``. Measured here, in this process, through the function both call
(:func:`webhooks.ingest.schema_validation.first_error`): the review's two reproductions
(a backtracking ``pattern``, which jsonschema's own ``re`` took 6.6 s over; ``uniqueItems``
over 4,000 objects, 10 s) and a schema that is merely expensive, which must end at the
validation budget. Each is compared with a benign schema over the same payload; the target
is a generous wall-clock ceiling on the worst of the repetitions.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from bench.context import Bench
from bench.stats import Figure, Target
from webhooks.core.errors import InvalidInput
from webhooks.ingest.schema_validation import VALIDATION_BUDGET_SECONDS, first_error

REPEATS = 5

#: 50 x 50 branches that all fail on ``{"a": 1}``: thousands of evaluations per item.
_STRINGS = {"anyOf": [{"type": "string", "minLength": k} for k in range(50)]}
_EXPENSIVE = {"items": {"anyOf": [{"properties": {"a": _STRINGS}}] * 50}}

#: name → (hostile schema, benign schema, payload, ceiling in ms)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], Any, float]] = {
    "pattern ^(a+)+$ on 'a'*28+'!'": (
        {"pattern": "^(a+)+$"},
        {"type": "string"},
        "a" * 28 + "!",
        100.0,
    ),
    "pattern ^(a+)+$ on 'a'*100000+'!'": (
        {"pattern": "^(a+)+$"},
        {"type": "string"},
        "a" * 100_000 + "!",
        100.0,
    ),
    "uniqueItems over 4000 objects": (
        {"type": "array", "uniqueItems": True},
        {"type": "array"},
        [{"n": n, "tag": "row"} for n in range(4000)],
        500.0,
    ),
    "nested anyOf over 3000 items (ends at the budget)": (
        _EXPENSIVE,
        {"type": "array"},
        [{"a": 1}] * 3000,
        VALIDATION_BUDGET_SECONDS * 1000 * 2,
    ),
}


def _worst_ms(schema: dict[str, Any], payload: Any) -> float:
    worst = 0.0
    for _ in range(REPEATS):
        started = time.perf_counter()
        # The budget's 422 (SchemaBudgetExceeded) is an answer too: timed is how soon it comes.
        with contextlib.suppress(InvalidInput):
            first_error(schema, payload)
        worst = max(worst, (time.perf_counter() - started) * 1000)
    return worst


def run(bench: Bench) -> None:
    for name, (hostile, benign, payload, ceiling) in CASES.items():
        value = _worst_ms(hostile, payload)
        baseline = _worst_ms(benign, payload)
        bench.add(
            Figure(
                "schemas",
                f"{name}, worst of {REPEATS}",
                value,
                "ms",
                baseline=baseline,
                baseline_name="a benign schema, same payload",
                target=Target("value_max", ceiling),
            )
        )
