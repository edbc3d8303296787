"""Recipe fixtures: the API (admin and tenant tokens), a real Celery worker on a
Redis database of its own, and a real receiver on 127.0.0.1 that records what it gets.

A plain worker serves the recipes; the Avionté recipe overrides ``worker`` with the second
one, which reaches receivers only through an egress proxy (see :class:`Workers`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlalchemy.orm import Session

from api import create_app
from tests.e2e import dead_letters
from tests.e2e.broker import environment, exclusive_redis_db
from tests.processes import Worker
from tests.recipes.recipe import Caller, ForwardProxy
from webhooks.admin.tokens import create_token


@pytest.fixture(scope="session")
def dead_letter_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recipes") / "dead-letters.jsonl"


def start_worker(
    broker_url: str,
    dead_letter_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
    **extra_env: str,
) -> Worker:
    """Spawn a worker on ``broker_url`` (call ``wait_ready`` before using it)."""
    env = {
        **os.environ,
        "WEBHOOKS_BROKER_URL": broker_url,
        "WEBHOOKS_DEAD_LETTER_HANDLER": f"{dead_letters.__name__}:record",
        dead_letters.FILE_VARIABLE: str(dead_letter_file),
        **extra_env,
    }
    return Worker(env, tmp_path_factory.mktemp("worker") / "worker.log", wait=False)


@dataclass(frozen=True)
class Workers:
    """The recipes' two workers, each on a Redis database of its own: a plain one, and one
    whose deliveries all leave through ``HTTPS_PROXY`` (the Avionté recipe's egress proxy)."""

    plain: Worker
    plain_broker: str
    proxied: Worker
    proxied_broker: str
    proxy: ForwardProxy


@pytest.fixture(scope="session")
def workers(dead_letter_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Both workers, started side by side (a worker takes seconds to start)."""
    redis_url = os.environ["WEBHOOKS_TEST_REDIS_URL"]
    proxy = ForwardProxy()
    with exclusive_redis_db(redis_url) as plain_url, exclusive_redis_db(redis_url) as proxied_url:
        plain = start_worker(plain_url, dead_letter_file, tmp_path_factory)
        proxied = start_worker(
            proxied_url, dead_letter_file, tmp_path_factory, HTTPS_PROXY=proxy.url
        )
        try:
            plain.wait_ready()
            proxied.wait_ready()
            yield Workers(plain, plain_url, proxied, proxied_url, proxy)
        finally:
            # Killed: Celery's warm shutdown takes seconds, and what the workers hold goes
            # with their broker databases, which are flushed after the tests anyway.
            plain.kill()
            proxied.kill()
            proxy.stop()


@pytest.fixture(scope="module")
def worker(workers: Workers) -> Iterator[Worker]:
    """The module's worker; the test process publishes to its broker meanwhile."""
    with environment(WEBHOOKS_BROKER_URL=workers.plain_broker):
        yield workers.plain


ALL_SCOPES = ["endpoints:read", "endpoints:write", "events:read", "events:write"]


@pytest.fixture
def client(clean_db: None, worker: Worker, receiver: HTTPServer) -> Iterator[FlaskClient]:
    yield create_app({"TESTING": True}).test_client()


@pytest.fixture
def admin(client: FlaskClient, session: Session) -> Caller:
    _, plaintext = create_token(session, tenant=None)
    session.commit()
    return Caller(client, plaintext)


@pytest.fixture
def tenant_api(admin: Caller) -> Callable[[str], Caller]:
    """``tenant_api("acme")``: create the tenant and a token of it, both through the API."""

    def make(uid: str) -> Caller:
        created = admin.post("/v1/tenants", json={"uid": uid, "name": uid.title()})
        assert created.status_code == 201, created.get_data(as_text=True)
        token = admin.post(f"/v1/tenants/{uid}/tokens", json={"scopes": ALL_SCOPES})
        assert token.status_code == 201, token.get_data(as_text=True)
        return Caller(admin.client, token.get_json()["token"])

    return make


@pytest.fixture(autouse=True)
def _fresh_receiver(receiver: HTTPServer) -> Iterator[None]:
    yield
    receiver.clear()
