"""Postgres restarted under a burst: nothing lost, no crash loop, a typed error meanwhile.

A throwaway cluster (``tests.services.ThrowawayPostgres``), migrated, serves a worker, beat,
a gunicorn API and the producer (this process). It is stopped mid-burst and started again;
no process is restarted by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.broker import environment
from tests.faults.harness import (
    ENDPOINTS,
    Burst,
    Process,
    Receiver,
    all_succeeded,
    enqueue_spread,
    report,
    spread_endpoints,
    start_api,
    start_beat,
    start_worker,
    statuses,
    stopwatch,
)
from tests.services import ThrowawayPostgres, wait_until
from webhooks import WebhooksError
from webhooks.admin.tenants import create_tenant
from webhooks.admin.tokens import create_token
from webhooks.core.db import engine_for, new_session
from webhooks.core.errors import DatabaseUnavailable
from webhooks.ops import migrate

pytestmark = pytest.mark.e2e

BEFORE = 100
AFTER = 50


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        migrate.upgrade(server.url)
        yield server
    finally:
        engine_for(server.url).dispose()
        server.destroy()


def post_event(api: Process, token: str, number: int) -> requests.Response:
    return requests.post(
        f"{api.url}/v1/tenants/acme/events",
        json={"type": f"order.{number % ENDPOINTS}", "data": {"number": number, "via": "api"}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def booted_workers(api: Process) -> int:
    return api.log.read_text(errors="replace").count("Booting worker")


@pytest.mark.timeout(240)
def test_postgres_restart_mid_burst(
    postgres: ThrowawayPostgres,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    env = {**worker_env, "WEBHOOKS_DATABASE_URL": postgres.url}
    with environment(WEBHOOKS_DATABASE_URL=postgres.url):
        with new_session() as session:
            tenant = create_tenant(session, "acme")
            _, token = create_token(session, tenant=None)
            session.commit()
            spread_endpoints(session, tenant, receiver)
        beat = start_beat(env, tmp_path)
        worker = start_worker(env, tmp_path / "worker.log")
        api = start_api(env, tmp_path / "api.log", workers=1, threads=4)
        try:
            event_ids = Burst(enqueue_spread, BEFORE).join()
            wait_until(lambda: receiver.count() >= 30, 60, "the first sends")

            postgres.stop("fast")  # every connection closed, the server gone
            down = stopwatch()
            # The worker meets the outage mid-attempt: its next claim or record fails, and the
            # task is retried (OperationalError) or says the database is unreachable.
            wait_until(
                lambda: any(
                    marker in worker.log.read_text(errors="replace")
                    for marker in ("unreachable", "OperationalError")
                ),
                30,
                "the worker to meet the outage",
            )
            with pytest.raises(DatabaseUnavailable) as raised:
                enqueue_spread(-1)
            assert isinstance(raised.value, WebhooksError)
            raised_in = down()
            assert raised_in < 10
            during = post_event(api, token, -1)
            assert during.status_code == 503, during.text
            assert during.headers["Content-Type"].startswith("application/problem+json")
            outage = down()

            postgres.start()
            up = stopwatch()
            # The producer's first call after the restart succeeds: one reconnect, no error.
            event_ids += Burst(enqueue_spread, AFTER).join()
            first_api = post_event(api, token, 0)
            api_ids = [first_api.json()["id"]] if first_api.status_code == 202 else []

            def api_accepts() -> bool:
                answer_ = post_event(api, token, len(api_ids))
                if answer_.status_code == 202:
                    api_ids.append(answer_.json()["id"])
                return len(api_ids) >= 5

            wait_until(api_accepts, 30, "the API to accept events again")
            everything = event_ids + api_ids
            wait_until(all_succeeded(everything, len(everything)), 150, "every delivery to succeed")
            recovered_in = up()
            for process in (worker, beat, api):
                process.check_alive()
            # No crash loop: one worker start, gunicorn booted its one worker once.
            assert worker.log.read_text(errors="replace").count(" ready.") == 1
            assert booted_workers(api) == 1
            assert statuses(everything) == {"succeeded": len(everything)}
        finally:
            api.stop()
            worker.stop()
            beat.stop()
    counts = receiver.per_webhook_id()
    assert set(everything) <= set(counts), "an accepted event never reached the receiver"
    extra = sum(n - 1 for n in counts.values())
    report(
        "Postgres restart mid-burst",
        f"{BEFORE} events before, {AFTER} after, {len(api_ids)} via the API; enqueue_event "
        f"raised DatabaseUnavailable in {raised_in:.2f}s, the API answered 503; outage "
        f"{outage:.1f}s; first API call after restart {first_api.status_code}; every delivery "
        f"succeeded {recovered_in:.1f}s after the restart, {extra} extra sends",
    )
