"""Engines and sessions.

One engine per database URL per process. SQLite (the embedded default) is shared by the API,
the worker and beat processes at once, so it runs in WAL mode with a busy timeout.

A restarted Postgres server must cost one reconnect, not a crash loop, yet a ``SELECT 1`` before
every checkout (``pool_pre_ping``) is a round trip on every producer call and every delivery.
So a connection is pinged only when it has sat idle in the pool for more than
:data:`IDLE_PING_SECONDS` (the likely victims of a restart that happened while nothing ran);
a connection found dead mid-burst raises a disconnect error, on which SQLAlchemy invalidates
the whole pool, and the hot paths (:func:`webhooks.ingest.enqueue_event`,
:func:`webhooks.delivery.engine.process`) run their one statement again once
(:func:`retry_on_disconnect`) on a fresh connection.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from webhooks.core.config import get_settings
from webhooks.core.errors import DatabaseUnavailable, SchemaMissing, WebhooksError


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


T = TypeVar("T")

POOL_TIMEOUT_SECONDS = 5.0
"""The longest wait for a pooled connection before :class:`sqlalchemy.exc.TimeoutError`.

Bounded because a delivery's lease covers one such wait (see
:func:`webhooks.delivery.state.lease_seconds`); SQLAlchemy's default is 30 s."""

IDLE_PING_SECONDS = 2.0
"""A pooled connection idle for longer than this is pinged before it is handed out."""

_RETURNED_AT = "webhooks_returned_at"


def _stamp_returned(_dbapi_connection: Any, record: Any) -> None:
    record.info[_RETURNED_AT] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    returned = record.info.get(_RETURNED_AT)
    if returned is None or time.monotonic() - returned <= IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        # psycopg2 opened a transaction for the SELECT unless in autocommit: end it.
        if not getattr(dbapi_connection, "autocommit", True):
            dbapi_connection.rollback()
    except Exception as exc:
        # The pool discards this connection and checks out (or opens) another.
        raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def retry_on_disconnect(operation: Callable[[], T]) -> T:
    """Run ``operation``; once more if the connection turned out to be dead.

    For the hot paths' single statements, which are safe to run twice (an idempotent insert,
    a conditional update). A disconnect error has invalidated the pool by then, so the second
    run gets a fresh connection. Any other error, or a second failure, propagates.
    """
    try:
        return operation()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return operation()


@cache
def engine_for(url: str, *, autocommit: bool = False) -> Engine:
    """The engine for ``url``, created once per process (and once more with ``autocommit``)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(
        url,
        # Set once per connection, not per checkout (execution_options would set and reset
        # the isolation level around every use: a round trip each way with psycopg2).
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
        # Not sized by the worker's -c: a greenlet holds a connection only for its claim and its
        # record, never while the receiver answers, so even a -c 1000 process with receivers
        # answering in 1 s keeps a handful busy (docs/operations.md, "Database connections").
        pool_size=10,
        max_overflow=20,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {},
        # An error's text would otherwise quote its bound parameters: payloads, headers and
        # URLs, all the way into the logs.
        hide_parameters=True,
    )
    event.listen(engine, "connect", _stamp_returned)
    event.listen(engine, "checkin", _stamp_returned)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def get_engine() -> Engine:
    """The engine of the configured database."""
    return engine_for(get_settings().database_url)


def autocommit_engine() -> Engine:
    """An engine (a pool of its own) whose every statement commits on its own.

    For the hot paths' single statements on Postgres: no ``BEGIN`` and no ``COMMIT`` round
    trips. ``connection.begin()`` still opens a real transaction when several statements
    must commit together.
    """
    return engine_for(get_settings().database_url, autocommit=True)


@cache
def _sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def new_session() -> Session:
    """A session on the configured database; the caller commits and closes it."""
    return _sessionmaker(get_settings().database_url)()


def is_unreachable(exc: BaseException) -> bool:
    """Whether a database error means the server could not be reached (vs. a bad query)."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


#: Postgres' SQLSTATEs for a missing table or column; SQLite says it in words.
_UNDEFINED = ("42P01", "42703")


def is_schema_missing(exc: BaseException) -> bool:
    """Whether a database error means the schema is absent or older than this code's."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "pgcode", None) in _UNDEFINED:
        return True
    return str(exc.orig).startswith(("no such table", "no such column"))


def library_error(exc: DBAPIError) -> WebhooksError | None:
    """The :class:`WebhooksError` a database error amounts to, or None for a bad query.

    An empty or unmigrated database is reachable: saying "unreachable" sends people after
    the network when one command would fix it.
    """
    if is_schema_missing(exc):
        return SchemaMissing(
            f"the database has no schema or an older one ({exc.orig}): run `webhooks db upgrade`"
        )
    if is_unreachable(exc):
        return DatabaseUnavailable(f"database unreachable: {exc.orig}")
    return None


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success, rolls back on error, and says when the DB is down."""
    session = new_session()
    try:
        yield session
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        error = library_error(exc)
        if error is not None:
            raise error from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
