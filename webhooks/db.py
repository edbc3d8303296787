"""Engines and sessions.

One engine per database URL per process. SQLite (the embedded default) is shared by the API,
the worker and beat processes at once, so it runs in WAL mode with a busy timeout; Postgres
connections are pre-pinged so that a restarted server costs one reconnect, not a crash loop.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from webhooks.config import get_settings
from webhooks.errors import DatabaseUnavailable


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


@cache
def engine_for(url: str) -> Engine:
    """The engine for ``url``, created once per process."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {},
    )


def get_engine() -> Engine:
    """The engine of the configured database."""
    return engine_for(get_settings().database_url)


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


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success, rolls back on error, and says when the DB is down."""
    session = new_session()
    try:
        yield session
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        if is_unreachable(exc):
            raise DatabaseUnavailable(f"database unreachable: {exc.orig}") from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
