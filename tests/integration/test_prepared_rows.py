"""A prepared statement run on the driver's cursor (``PreparedStatement.rows``, the engine's
claim and record) fails as SQLAlchemy's own execution does: a killed server session is a
``DBAPIError`` marked ``connection_invalidated``, after which the pool hands out a fresh
connection where the statement is prepared anew; any other error leaves the connection
usable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError

from webhooks.core.db import autocommit_engine, get_engine, retry_on_disconnect
from webhooks.core.prepared import PreparedStatement

_PROBE = PreparedStatement(
    "test_rows_probe",
    "SELECT CAST(:a AS integer) + 1 AS b, 10 / CAST(:a AS integer) AS c",
    (("a", "integer"),),
)


@pytest.fixture
def engine(clean_db: None) -> Iterator[Engine]:
    """An autocommit pool of one connection: every use below is on the same one."""
    engine = create_engine(
        autocommit_engine().url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0
    )
    yield engine
    engine.dispose()


def _rows(engine: Engine, values: dict[str, int]) -> list[dict[str, object]]:
    with engine.connect() as connection:
        return _PROBE.rows(connection, values)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    assert isinstance(pid, int)
    return pid


def _kill(pid: int) -> None:
    with get_engine().begin() as connection:  # not the autocommit pool's connection
        killed = connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar()
    assert killed


def test_rows_are_dicts_by_column_name(engine: Engine) -> None:
    assert _rows(engine, {"a": 1}) == [{"b": 2, "c": 10}]


def test_a_killed_session_invalidates_and_the_retry_prepares_again(engine: Engine) -> None:
    assert _rows(engine, {"a": 2}) == [{"b": 3, "c": 5}]  # prepared on the connection
    _kill(_backend_pid(engine))

    with pytest.raises(DBAPIError) as raised:
        _rows(engine, {"a": 2})
    assert raised.value.connection_invalidated

    _rows(engine, {"a": 2})  # a new connection: prepared there
    _kill(_backend_pid(engine))
    assert retry_on_disconnect(lambda: _rows(engine, {"a": 5})) == [{"b": 6, "c": 2}]


def test_a_failing_statement_is_a_dbapi_error_and_the_connection_lives_on(
    engine: Engine,
) -> None:
    pid = _backend_pid(engine)
    with pytest.raises(DBAPIError) as raised:
        _rows(engine, {"a": 0})  # division by zero
    assert not raised.value.connection_invalidated
    assert getattr(raised.value.orig, "pgcode", None) == "22012"
    assert _rows(engine, {"a": 1}) == [{"b": 2, "c": 10}]
    assert _backend_pid(engine) == pid
