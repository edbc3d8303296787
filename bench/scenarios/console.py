"""Console pages on a large history: p95 render of the list pages under 100 ms.

The history scenario's seeding (:func:`bench.scenarios.history.seed`: one tenant, 10
endpoints, 300,000 deliveries and 1,000,000 attempts over 45 days at full size) and then
each list page of the console rendered through the Flask test client by an admin session:
the whole request (session lookup, the same queries as the API, Jinja, the SVG charts).
First pages and deep ones (a cursor half-way down). The first render of all, timed once on its
own, rolls up the seeded week's hours; the others read the rollup as beat keeps it.
"""

from __future__ import annotations

from typing import Any

from bench.context import Bench
from bench.scenarios.history import Seeded, deep_cursor, p50_p95, seed, time_calls
from bench.stats import Figure, Target

TARGET_MS = 100.0
#: The one render timed once, without a target: the first after seeding, which rolls up the
#: week's hours itself (:mod:`webhooks.history.rollup`; beat does it in a running install).
LAZY = "endpoint, 7 d chart, first render (rolls up the week)"


def _pages(seeded: Seeded) -> dict[str, tuple[str, Any, Any]]:
    """name → (path, the query of its list, its id column), for the deep cursor."""
    from webhooks.admin.endpoints import endpoints_query
    from webhooks.history.queries import deliveries_query, endpoint_attempts_query, events_query
    from webhooks.models import Attempt, Delivery, Endpoint, Event

    base = f"/console/t/{seeded.tenant_uid}"
    endpoint = seeded.endpoint_ids[4]
    return {
        "endpoints (health of each)": (
            f"{base}/endpoints",
            endpoints_query(seeded.tenant_id),
            Endpoint.id,
        ),
        "events (with their deliveries)": (
            f"{base}/events",
            events_query(seeded.tenant_id),
            Event.id,
        ),
        "deliveries": (f"{base}/deliveries", deliveries_query(seeded.tenant_id), Delivery.id),
        "deliveries status=failed by endpoint": (
            f"{base}/deliveries?status=failed&endpoint_id={endpoint}",
            deliveries_query(seeded.tenant_id, endpoint_id=endpoint, status="failed"),
            Delivery.id,
        ),
        "endpoint (stats, 24 h chart, run history)": (
            f"{base}/endpoints/{endpoint}",
            endpoint_attempts_query(endpoint),
            Attempt.id,
        ),
        "endpoint, 7 d chart": (
            f"{base}/endpoints/{endpoint}?span=7d",
            endpoint_attempts_query(endpoint),
            Attempt.id,
        ),
    }


def measure(seeded: Seeded, repeat: int) -> dict[str, tuple[float, float]]:
    from api import create_app
    from api.pagination import encode_cursor
    from webhooks.admin import console_sessions
    from webhooks.admin.tokens import create_token
    from webhooks.core.db import new_session

    pages = _pages(seeded)
    with new_session() as session:
        _, token = create_token(session, tenant=None)
        opened = console_sessions.sign_in(session, token)
        session.commit()
        cursors = {
            name: deep_cursor(session, query, column) for name, (_, query, column) in pages.items()
        }
    client = create_app().test_client()
    client.set_cookie("webhooks_console", opened.key, path="/console")
    results: dict[str, tuple[float, float]] = {}
    # Nothing is rolled up yet (beat is not running): this render rolls up the week itself.
    [lazy] = time_calls(lambda: client.get(pages["endpoint, 7 d chart"][0]), 1)
    results[LAZY] = (lazy, lazy)
    for name, (path, _, _) in pages.items():
        joiner = "&" if "?" in path else "?"
        deep = cursors[name]
        depths = [("first", path)]
        if deep is not None and "(health" not in name:
            depths.append(("deep", f"{path}{joiner}cursor={encode_cursor(deep)}"))
        for depth, url in depths:

            def call(url: str = url) -> None:
                response = client.get(url)
                assert response.status_code == 200, response.get_data(as_text=True)[:500]

            time_calls(call, 5)  # warm-up
            results[f"{name}, {depth} page"] = p50_p95(time_calls(call, repeat))
    return results


def run(bench: Bench) -> None:
    from webhooks.core.db import get_engine

    quick = bench.options.quick
    deliveries, attempts = (5_000, 16_000) if quick else (300_000, 1_000_000)
    repeat = 20 if quick else 100
    bench.truncate_history()
    seeded = seed(bench, get_engine(), deliveries, attempts, tenant_uid="console")
    target = Target("value_max", TARGET_MS)
    note = f"p95 of {repeat} renders, {deliveries} deliveries / {attempts} attempts"
    for name, (p50, p95) in measure(seeded, repeat).items():
        if name == LAZY:
            bench.add(Figure("console", name, p95, "ms", note="once, not a p95"))
            continue
        bench.add(
            Figure(
                "console", f"{name} p95", p95, "ms", target=target, note=f"{note}; p50 {p50:.1f}"
            )
        )
    bench.truncate_history()
