"""The cost of ed25519 (``v1a``) signing against HMAC (``v1``), both measured in this run.

Two figures per scheme:

- **sign time per delivery**, in this process: the ``webhook-signature`` value of a realistic
  envelope (about 400 bytes), one key and two keys (a rotation), in alternating blocks so
  the machine's drift hits both schemes alike; medians of the blocks' per-call times;
- **end-to-end throughput**: the engine's gevent worker draining the same number of
  deliveries to HMAC endpoints and to ed25519 endpoints, in an order reversed every round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from statistics import median

from bench import fixtures
from bench.context import Bench
from bench.naive import SECRET
from bench.pools import ENGINE_APP
from bench.scenarios.common import drain
from bench.stats import Figure
from webhooks.core.ids import new_id
from webhooks.outbound import signing

BLOCKS = 21
CALLS_PER_BLOCK = 200


def _per_call_us(sign: Callable[[], str], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        sign()
    return (time.perf_counter() - started) / calls * 1e6


def sign_times(blocks: int = BLOCKS, calls: int = CALLS_PER_BLOCK) -> dict[str, float]:
    """Median microseconds per ``webhook-signature`` value, by scheme and number of keys."""
    event_id = new_id("evt")
    body = fixtures.envelope_body(event_id, 7).encode()
    stamp = int(time.time())
    secrets = [SECRET, signing.generate_secret()]
    keys = [signing.generate_private_key(), signing.generate_private_key()]
    signers: dict[str, Callable[[], str]] = {
        "hmac, 1 secret": lambda: signing.sign(event_id, stamp, body, secrets[:1]),
        "ed25519, 1 key": lambda: signing.sign_ed25519(event_id, stamp, body, keys[:1]),
        "hmac, 2 secrets": lambda: signing.sign(event_id, stamp, body, secrets),
        "ed25519, 2 keys": lambda: signing.sign_ed25519(event_id, stamp, body, keys),
    }
    samples: dict[str, list[float]] = {name: [] for name in signers}
    for block in range(blocks):
        order = list(signers) if block % 2 == 0 else list(reversed(signers))
        for name in order:
            samples[name].append(_per_call_us(signers[name], calls))
    return {name: median(values) for name, values in samples.items()}


def run(bench: Bench) -> None:
    times = sign_times()
    for keys, hmac_name, ed_name in ((1, "hmac, 1 secret", "ed25519, 1 key"),
                                     (2, "hmac, 2 secrets", "ed25519, 2 keys")):  # fmt: skip
        bench.add(
            Figure(
                "signing",
                f"sign time per delivery, ed25519 ({keys} key{'s' if keys > 1 else ''})",
                times[ed_name],
                "µs",
                times[hmac_name],
                "HMAC",
            )
        )

    options = bench.options
    pool = options.pools[0]
    by_scheme = {
        scheme: fixtures.make_targets(
            bench.receiver, f"sig-{scheme}", options.endpoints, signing=scheme
        )
        for scheme in signing.SCHEMES
    }
    rates: dict[str, list[float]] = {scheme: [] for scheme in signing.SCHEMES}
    cpu: dict[str, list[float]] = {scheme: [] for scheme in signing.SCHEMES}
    with bench.workers((ENGINE_APP, pool, f"engine-{pool}")) as (worker,):
        for round_index in range(options.rounds):
            order = signing.SCHEMES if round_index % 2 == 0 else signing.SCHEMES[::-1]
            for scheme in order:
                rate = drain(bench, "signing", "engine", pool, [worker], by_scheme[scheme],
                             options.size)  # fmt: skip
                if rate is None:
                    continue
                rates[scheme].append(rate)
                spent = bench.phases[-1].cpu_ms_per_op("worker")
                if spent is not None:
                    cpu[scheme].append(spent)
    label = f"{pool} -c{options.concurrency(pool)}"
    for name, values, unit in (
        (f"engine e2e with ed25519 endpoints, {label}", rates, "deliveries/s"),
        (f"worker CPU per delivery, ed25519 endpoints, {label}", cpu, "ms"),
    ):
        bench.add(
            Figure(
                "signing",
                name,
                _median(values[signing.ED25519]),
                unit,
                _median(values[signing.HMAC]),
                "HMAC endpoints",
            )
        )


def _median(values: list[float]) -> float | None:
    return median(values) if values else None
