"""End to end on RabbitMQ: a real gevent worker on ``amqp://`` delivering (first try, and
after one retry), plus the readiness check and queue depths on that transport.

RabbitMQ is at ``WEBHOOKS_TEST_AMQP_URL`` (``amqp://guest:guest@127.0.0.1:5672//`` by default).
The run takes a virtual host of its own when ``rabbitmqctl`` can make one (other runs of the
suite may be consuming the same queue names on ``/``); otherwise it uses the URL's and purges
the three queues before and after. An unreachable RabbitMQ fails the test with one line.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kombu import Connection
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug import Response

from tests.e2e import dead_letters
from tests.e2e import test_delivery_e2e as on_redis
from tests.e2e.broker import environment
from tests.e2e.test_delivery_e2e import SECRET, Received, attempts, wait_for_status
from tests.processes import Worker
from webhooks import enqueue_event
from webhooks.admin.tenants import create_tenant
from webhooks.broker import inspection
from webhooks.broker.publishing import DEAD_LETTER_QUEUE, DELIVERIES_QUEUE, RETRIES_QUEUE
from webhooks.core.db import new_session
from webhooks.models import Delivery, Endpoint
from webhooks.ops import readiness

pytestmark = pytest.mark.e2e

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
QUEUES = (DELIVERIES_QUEUE, RETRIES_QUEUE, DEAD_LETTER_QUEUE)


def _rabbitmqctl(*args: str) -> bool:
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        return False
    done = subprocess.run([binary, *args], capture_output=True, timeout=60, check=False)
    return done.returncode == 0


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    base = os.environ.get("WEBHOOKS_TEST_AMQP_URL", DEFAULT_AMQP_URL)
    try:
        with Connection(base, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=0)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at {base}: {exc} (start rabbitmq-server "
                    "or set WEBHOOKS_TEST_AMQP_URL)", pytrace=False)  # fmt: skip
    vhost = f"webhooks-test-{os.getpid()}-{secrets.token_hex(3)}"
    user = Connection(base).userid or "guest"
    if _rabbitmqctl("add_vhost", vhost) and _rabbitmqctl(
        "set_permissions", "-p", vhost, user, ".*", ".*", ".*"
    ):
        try:
            parts = urlsplit(base)
            yield f"{parts.scheme}://{parts.netloc}/{vhost}"
        finally:
            _rabbitmqctl("delete_vhost", vhost)
        return
    _purge(base)
    try:
        yield base
    finally:
        _purge(base)


def _purge(url: str) -> None:
    with Connection(url, connect_timeout=3) as connection:
        for queue in QUEUES:
            channel = connection.channel()
            try:
                channel.queue_purge(queue)
            except connection.channel_errors:
                pass  # not declared yet
            finally:
                channel.close()


@pytest.fixture(scope="module")
def worker(
    amqp_url: str, dead_letter_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    with environment(WEBHOOKS_BROKER_URL=amqp_url):
        env = {
            **os.environ,
            "WEBHOOKS_BROKER_URL": amqp_url,
            "WEBHOOKS_DEAD_LETTER_HANDLER": f"{dead_letters.__name__}:record",
            dead_letters.FILE_VARIABLE: str(dead_letter_file),
        }
        started = Worker(env, tmp_path_factory.mktemp("amqp-worker") / "worker.log")
        try:
            yield started
        finally:
            started.stop()


# The broker-agnostic end-to-end tests of the Redis module, collected again here: with this
# module's worker (and its environment), they run over AMQP.
tenant = on_redis.tenant
dead_letter_file = on_redis.dead_letter_file
test_success_over_amqp = on_redis.test_success_signed_and_recorded
test_retries_over_amqp = on_redis.test_retries_keep_the_webhook_id_on_a_custom_schedule
test_dead_letter_over_amqp = on_redis.test_final_failure_goes_to_the_dead_letter_queue
test_timeout_over_amqp = on_redis.test_timeout_is_classified
test_redirect_over_amqp = on_redis.test_redirect_is_not_followed


def endpoint(session: Session, tenant_id: str, url: str, **fields: object) -> str:
    made = Endpoint(tenant_id=tenant_id, url=url, secret=SECRET, **fields)
    session.add(made)
    session.commit()
    return made.id


def test_deliveries_and_a_retry_over_amqp(
    session: Session, worker: Worker, receiver: HTTPServer, amqp_url: str
) -> None:
    tenant = create_tenant(session, "acme")
    session.commit()
    ok = Received(receiver, "/amqp-ok", lambda _: Response("ok"))
    flaky = Received(receiver, "/amqp-flaky", lambda n: Response("", 500 if n == 1 else 200))
    endpoint(session, tenant.id, ok.url, event_types=["first.*"])
    endpoint(session, tenant.id, flaky.url, event_types=["second.*"], retry_schedule=[1])

    with environment(WEBHOOKS_BROKER_URL=amqp_url):
        first = enqueue_event("first.try", {"n": 1}, tenant="acme")
        second = enqueue_event("second.try", {"n": 2}, tenant="acme")
        delivered = wait_for_status(first, "succeeded")
        retried = wait_for_status(second, "succeeded")

        assert [a.response_status for a in attempts(delivered.id)] == [200]
        assert [a.response_status for a in attempts(retried.id)] == [500, 200]
        assert len(ok.verified()) == 1 and len(flaky.verified()) == 2
        assert flaky.header("Webhook-Id") == [second, second]

        assert readiness.check_all()["broker"] == "ok"
        assert inspection.queue_depths(QUEUES) == dict.fromkeys(QUEUES, 0)
    with new_session() as db:
        statuses = set(db.scalars(select(Delivery.status)))
    assert statuses == {"succeeded"}
