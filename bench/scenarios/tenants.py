"""Many tenants: ``enqueue_event`` among 10,000 endpoints of 1,000 tenants, against one endpoint.

A platform's producer call must not slow down as customers and their endpoints pile up:
the tenant is found by its index, and only that tenant's endpoints are matched against the
type. Two fresh databases on the same Postgres server (the run's own holds other scenarios'
tenants), both migrated with the shipped scripts:

- *one endpoint*: one tenant with one endpoint subscribed to ``traveller.*``;
- *many tenants*: 1,000 tenants of 10 endpoints each, every endpoint subscribed through type
  wildcards (``traveller.*`` on one endpoint per tenant, ``<other>.*`` and exact names of
  other types on the nine others), ``VACUUM ANALYZE``d as a long-lived database would be.

Every event matches exactly one endpoint in both, so both sides do the same writes; events of
the many-tenants side go round robin over the 1,000 tenants (no tenant stays cached). The
harness calls ``enqueue_event`` one call at a time, in blocks alternating between the two
databases (switching is re-reading the settings: each database keeps its engine and prepared
statements), and compares the p50s. No worker consumes meanwhile: the producer call alone is
timed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from sqlalchemy import text

from bench import fixtures
from bench.context import Bench
from bench.naive import SECRET
from bench.stats import Figure, Target, percentile
from tests import services

TENANTS = 1_000
ENDPOINTS_PER_TENANT = 10
ROUNDS = 3
WARMUP = 50
LIMIT = 1.3
#: Types the other endpoints subscribe to: none of them matches ``fixtures.EVENT_TYPE``.
OTHER_TYPES = ("booking", "invoice", "payment", "refund", "passport", "seat", "meal", "bag", "visa")


def _subscriptions(slot: int) -> list[str]:
    """The ``event_types`` of a tenant's endpoint ``slot``: only slot 0 matches the event."""
    if slot == 0:
        return ["traveller.*"]
    other = OTHER_TYPES[slot - 1]
    return [f"{other}.*", f"{other}.created", "traveller.created"]


@contextlib.contextmanager
def _database(url: str) -> Iterator[None]:
    """Point the library (settings, engine, sessions) at ``url`` for the block."""
    from webhooks.core.config import get_settings

    previous = os.environ["WEBHOOKS_DATABASE_URL"]
    os.environ["WEBHOOKS_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ["WEBHOOKS_DATABASE_URL"] = previous
        get_settings.cache_clear()


def _seed(bench: Bench, tenants: int, per_tenant: int) -> list[str]:
    """``tenants`` tenants of ``per_tenant`` endpoints each; their uids."""
    from webhooks.core.db import get_engine, new_session
    from webhooks.models import Endpoint, Tenant

    uids = []
    with new_session() as session:
        for index in range(tenants):
            tenant = Tenant(uid=f"many-{index}", name=f"bench tenant {index}")
            session.add(tenant)
            session.flush()
            uids.append(tenant.uid)
            session.add_all(
                Endpoint(
                    tenant_id=tenant.id,
                    url=bench.receiver.url(index),
                    secret=SECRET,
                    event_types=_subscriptions(slot) if per_tenant > 1 else ["traveller.*"],
                )
                for slot in range(per_tenant)
            )
        session.commit()
    with get_engine().connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE tenants, endpoints")
        )
    return uids


def _block(uids: list[str], count: int, start: int) -> list[float]:
    """``count`` calls, round robin over ``uids`` from ``start``; each call's ms."""
    from webhooks import enqueue_event

    latencies = []
    for index in range(start, start + count):
        data = fixtures.sample_data(index)
        uid = uids[index % len(uids)]
        t0 = time.monotonic()
        enqueue_event(fixtures.EVENT_TYPE, data, tenant=uid)
        latencies.append((time.monotonic() - t0) * 1000)
    return latencies


@contextlib.contextmanager
def _scratch_database(bench: Bench, suffix: str) -> Iterator[str]:
    """A new migrated database next to the run's for the block, dropped after it; its URL."""
    from webhooks.core.db import engine_for
    from webhooks.ops import migrate

    name = f"{bench.env.database_name}_{suffix}"
    services.drop_database(bench.env.admin_url, name)
    url = services.create_database(bench.env.admin_url, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        engine_for(url).dispose()
        engine_for(url, autocommit=True).dispose()
        services.drop_database(bench.env.admin_url, name)


def run(bench: Bench) -> None:
    with _scratch_database(bench, "one") as one_url, _scratch_database(bench, "many") as many_url:
        with _database(one_url):
            one = _seed(bench, 1, 1)
        with bench.phase("tenants", f"seed {TENANTS} tenants x {ENDPOINTS_PER_TENANT}") as phase:
            with _database(many_url):
                many = _seed(bench, TENANTS, ENDPOINTS_PER_TENANT)
            phase.ops = TENANTS * ENDPOINTS_PER_TENANT
        _measure(bench, {"one": (one, one_url), "many": (many, many_url)})


def _measure(bench: Bench, sides: dict[str, tuple[list[str], str]]) -> None:
    """Alternate blocks of calls between the sides; check each event made one delivery."""
    per_block = bench.options.enqueue_ops
    for uids, url in sides.values():
        with _database(url):
            _block(uids, WARMUP, 0)
    samples: dict[str, list[float]] = {side: [] for side in sides}
    offset = WARMUP
    for _ in range(ROUNDS):
        for side, (uids, url) in sides.items():
            name = "enqueue, 1 endpoint" if side == "one" else "enqueue, 1,000 tenants"
            with bench.phase("tenants", name) as phase, _database(url):
                samples[side] += _block(uids, per_block, offset)
                phase.ops = per_block
            phase.cpu["worker"] = phase.cpu["harness"]
        offset += per_block
    for side, (_, url) in sides.items():
        with _database(url):
            events = bench.scalar("SELECT count(*) FROM events")
            deliveries = bench.scalar("SELECT count(*) FROM deliveries")
        if events != deliveries or events != len(samples[side]) + WARMUP:
            raise RuntimeError(f"{side}: {events} events made {deliveries} deliveries, not 1 each")
    label = f"{TENANTS:,} tenants, {TENANTS * ENDPOINTS_PER_TENANT:,} endpoints (type wildcards)"
    for pct in (50, 99):
        bench.add(
            Figure(
                "tenants",
                f"enqueue_event p{pct}, 1 of {label}",
                percentile(samples["many"], pct),
                "ms",
                percentile(samples["one"], pct),
                "1 tenant, 1 endpoint",
                Target("ratio_max", LIMIT) if pct == 50 else None,
            )
        )
