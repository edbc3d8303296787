"""The benchmark's own throwaway world: a database, a Redis db number, the environment.

Everything a run touches is its own, so a run never disturbs (nor is disturbed by the rows
of) the test suite or another engineer's work on the same servers:

- a database ``bench_<pid>`` created on the local Postgres, migrated with the shipped
  Alembic scripts (:func:`webhooks.ops.migrate.upgrade`), dropped at the end;
- a Redis db number of its own (13 unless it is taken), flushed before each scenario, and
  held for the whole run under the test suite's lock key (``tests/e2e/broker.py``): the
  suite picks free db numbers 1-15 by ``SET NX`` of that key and flushes them, so a db not
  marked as held would be flushed (and fed other runs' tasks) in the middle of a scenario;
- the ``WEBHOOKS_*`` environment (plain HTTP and loopback allowed, a generated Fernet key)
  set in this process before anything reads the settings, and so inherited by every worker,
  producer and receiver process the harness starts.

The servers are the ones the test suite uses (``tests/services.py``): those at
``BENCH_ADMIN_DATABASE_URL`` / ``BENCH_REDIS_URL`` if set, else the suite's defaults on
127.0.0.1, else throwaway servers started from the installed binaries.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from cryptography.fernet import Fernet

from tests import services

DEFAULT_REDIS_DB = 13

#: The key by which test runs and benchmark runs mark a Redis db as theirs (the test suite's).
LOCK_KEY = "webhooks-tests:owner"
LOCK_SECONDS = 900
_REFRESH_SECONDS = 60


class RedisDbLock:
    """Hold a Redis db number under :data:`LOCK_KEY`, refreshing its expiry until released."""

    def __init__(self, base_url: str, preferred: int) -> None:
        self.owner = f"bench-{os.getpid()}-{random.random()}"
        candidates = [preferred, *random.sample([d for d in range(1, 16) if d != preferred], 14)]
        for db in candidates:
            url = _redis_url(base_url, db)
            client = redis.Redis.from_url(url)
            if client.set(LOCK_KEY, self.owner, nx=True, ex=LOCK_SECONDS):
                self.url, self.db, self._client = url, db, client
                break
            client.close()
        else:
            raise RuntimeError("every Redis db 1-15 is held by a test or benchmark run")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="redis-db-lock", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(_REFRESH_SECONDS):
            self.mark()

    def mark(self) -> None:
        """Set (again) the lock key: after a FLUSHDB, and periodically against expiry."""
        self._client.set(LOCK_KEY, self.owner, ex=LOCK_SECONDS)

    def flush(self) -> None:
        """Empty the db, keeping it marked as ours."""
        with self._client.pipeline() as pipe:  # MULTI: nobody sees it unmarked
            pipe.flushdb()
            pipe.set(LOCK_KEY, self.owner, ex=LOCK_SECONDS)
            pipe.execute()

    def release(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.flushdb()
        self._client.close()


@dataclass
class Environment:
    """What :func:`provision` set up, and how to take it down again."""

    admin_url: str
    database_url: str
    database_name: str
    redis_lock: RedisDbLock
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return self.redis_lock.url

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def flush_redis(self) -> None:
        """Empty the benchmark's Redis db: no message of a scenario outlives it."""
        self.redis_lock.flush()

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` at :meth:`teardown` (before the database is dropped)."""
        self._cleanups.append(cleanup)

    def teardown(self) -> None:
        """Drop the database and stop what was started for it; safe to call twice."""
        from webhooks.core.db import get_engine

        get_engine().dispose()
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception as exc:  # a failed cleanup must not hide the others
                print(f"bench: cleanup failed: {exc}")


def _redis_url(base: str, db: int) -> str:
    """``base`` (a Redis URL) with its db number replaced by ``db``."""
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


def provision(redis_db: int = DEFAULT_REDIS_DB) -> Environment:
    """Create the database and set the environment; the caller calls ``teardown()``."""
    cleanups: list[Callable[[], None]] = []
    try:
        return _provision(redis_db, cleanups)
    except BaseException:
        for cleanup in reversed(cleanups):
            cleanup()
        raise


def _provision(redis_db: int, cleanups: list[Callable[[], None]]) -> Environment:
    admin_url = os.environ.get("BENCH_ADMIN_DATABASE_URL")
    if not admin_url:
        admin_url, stop_postgres = services.postgres_server()
        cleanups.append(stop_postgres)
    base_redis = os.environ.get("BENCH_REDIS_URL")
    if not base_redis:
        base_redis, stop_redis = services.redis_server()
        cleanups.append(stop_redis)
    lock = RedisDbLock(base_redis, redis_db)
    cleanups.append(lock.release)

    name = f"bench_{os.getpid()}"
    services.drop_database(admin_url, name)
    database_url = services.create_database(admin_url, name)
    cleanups.append(lambda: services.drop_database(admin_url, name))

    os.environ.update(
        {
            "WEBHOOKS_DATABASE_URL": database_url,
            "WEBHOOKS_BROKER_URL": lock.url,
            "WEBHOOKS_SECRET_KEY": Fernet.generate_key().decode(),
            "WEBHOOKS_ALLOW_HTTP": "1",
            "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
            "WEBHOOKS_VAR_DIR": tempfile.mkdtemp(prefix="webhooks-bench-var-"),
            "WEBHOOKS_LOG_FORMAT": "text",
        }
    )
    from webhooks.core.config import get_settings
    from webhooks.ops import migrate

    get_settings.cache_clear()
    migrate.upgrade(database_url)
    lock.flush()
    return Environment(admin_url, database_url, name, lock, list(cleanups))
