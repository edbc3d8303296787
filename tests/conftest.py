"""Test-suite set-up: real Postgres and Redis, a fresh database for this run.

The environment is set before any test imports the library's settings, so every process the
tests start (workers, API, CLI) inherits the same configuration.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator

import pytest
from cryptography.fernet import Fernet
from pytest_httpserver import HTTPServer
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests import services

_cleanups: list[Callable[[], None]] = []


def pytest_configure(config: pytest.Config) -> None:
    try:
        admin_url, stop_postgres = services.postgres_server()
        redis_url, stop_redis = services.redis_server()
    except services.ServiceUnavailable as exc:
        pytest.exit(str(exc), returncode=3)
    _cleanups.extend([stop_redis, stop_postgres])
    name = f"webhooks_test_{os.getpid()}_{secrets.token_hex(3)}"
    database_url = services.create_database(admin_url, name)
    _cleanups.insert(0, lambda: services.drop_database(admin_url, name))
    os.environ.update(
        {
            "WEBHOOKS_TEST_ADMIN_DATABASE_URL": admin_url,
            "WEBHOOKS_TEST_REDIS_URL": redis_url,
            "WEBHOOKS_DATABASE_URL": database_url,
            "WEBHOOKS_BROKER_URL": redis_url,
            "WEBHOOKS_SECRET_KEY": Fernet.generate_key().decode(),
            "WEBHOOKS_ALLOW_HTTP": "1",
            "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
            "WEBHOOKS_VAR_DIR": tempfile.mkdtemp(prefix="webhooks-var-"),
        }
    )
    from webhooks.ops import migrate

    migrate.upgrade()


def pytest_unconfigure(config: pytest.Config) -> None:
    from webhooks.core.db import get_engine

    get_engine().dispose()
    for cleanup in _cleanups:
        cleanup()


_TABLES = (
    "attempts, deliveries, events, endpoints, event_types, api_tokens, tenants, rolled_up_hours"
)
_TRUNCATE_TRIES = 5


@pytest.fixture
def clean_db() -> Iterator[None]:
    """Empty every table after the test, so tests see only their own rows."""
    yield
    from webhooks.core.db import get_engine

    # A worker a module still runs may hold row locks the TRUNCATE's table locks wait on;
    # Postgres then aborts one side of the deadlock, and the TRUNCATE is simply run again.
    for attempt in range(_TRUNCATE_TRIES):
        try:
            with get_engine().begin() as connection:
                connection.execute(text(f"TRUNCATE {_TABLES} CASCADE"))
            return
        except OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == _TRUNCATE_TRIES - 1:
                raise


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A Redis database of this module's own as the broker (it may be flushed or counted)."""
    from tests.e2e.broker import environment, exclusive_redis_db

    with (
        exclusive_redis_db(os.environ["WEBHOOKS_TEST_REDIS_URL"]) as url,
        environment(WEBHOOKS_BROKER_URL=url),
    ):
        yield url


@pytest.fixture(scope="module")
def receiver() -> Iterator[HTTPServer]:
    """A real HTTP receiver on 127.0.0.1, shared by a module's tests (each adds its paths)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def session(clean_db: None) -> Iterator[Session]:
    """A session on the test database (the test commits what it wants others to see)."""
    from webhooks.core.db import new_session

    with new_session() as db_session:
        yield db_session
