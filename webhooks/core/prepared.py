"""Server-side prepared statements for the hot paths' single statements (Postgres only).

The ingest statement (a CTE over JSONB filters with two inserts) costs Postgres about as much
to parse and plan as to run: 0.24 ms of planning and 0.37 ms of execution, measured with
``EXPLAIN ANALYZE``. ``PREPARE``'d once per connection, every later call is an ``EXECUTE`` of
the cached plan, and goes through ``exec_driver_sql`` (no SQL compilation on our side either):
the statement's round trip fell from 1.07 to 0.65 ms (p50, 1,500 calls, interleaved).

Only on autocommit connections (:func:`webhooks.core.db.autocommit_engine`): a ``PREPARE`` that
failed inside a transaction would abort it. A prepared statement lives as long as its
connection; the set of names prepared on a connection lives in the pool's record of it, which
is dropped with the connection when it is invalidated, so a new connection prepares again.
Poolers in transaction mode (PgBouncer's ``pool_mode = transaction``) do not keep a server
session per client connection: point ``WEBHOOKS_DATABASE_URL`` at Postgres itself or at a
session-mode pool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, TextClause, text
from sqlalchemy.exc import DBAPIError

_PREPARED_KEY = "webhooks_prepared"
_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@dataclass(frozen=True)
class PreparedStatement:
    """One SQL statement with ``:name`` parameters, run as ``PREPARE name`` / ``EXECUTE``.

    ``parameters`` lists each parameter once with its Postgres type, in the order of the
    ``EXECUTE`` arguments: declared types, not inferred ones, since one parameter may appear
    in several places of the statement. :attr:`text` is the same statement for a caller's
    transaction, where it must not be prepared.
    """

    name: str
    sql: str
    parameters: tuple[tuple[str, str], ...]
    #: A statement sent first in the same round trip, whose effects (a lock) the prepared
    #: statement must see: the two run as one implicit transaction, each statement with a
    #: snapshot of its own. It takes ``:name`` parameters of the same list.
    first: str | None = None
    text: TextClause = field(init=False, repr=False)
    _prepare: str = field(init=False, repr=False)
    _execute: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        positions = {name: index for index, (name, _) in enumerate(self.parameters, start=1)}
        used = set(_PARAMETER.findall(self.sql))
        if used != set(positions):
            raise ValueError(f"{self.name}: parameters {sorted(used)} != {sorted(positions)}")
        body = _PARAMETER.sub(lambda match: f"${positions[match.group(1)]}", self.sql)
        types = ", ".join(pg_type for _, pg_type in self.parameters)
        arguments = ", ".join(f"%({name})s" for name, _ in self.parameters)
        execute = f"EXECUTE {self.name} ({arguments})"
        if self.first is not None:
            first = _PARAMETER.sub(lambda match: f"%({match.group(1)})s", self.first)
            execute = f"{first}; {execute}"
        object.__setattr__(self, "text", text(self.sql))
        object.__setattr__(self, "_prepare", f"PREPARE {self.name} ({types}) AS {body}")
        object.__setattr__(self, "_execute", execute)

    def execute(
        self, connection: Connection, values: Mapping[str, Any]
    ) -> CursorResult[*tuple[Any, ...]]:
        """Run the statement on ``connection`` (autocommit), preparing it there first if new."""
        prepared: set[str] = connection.connection.info.setdefault(_PREPARED_KEY, set())
        if self.name not in prepared:
            connection.exec_driver_sql(self._prepare)
            prepared.add(self.name)
        return connection.exec_driver_sql(self._execute, dict(values))

    def rows(self, connection: Connection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """:meth:`execute` straight on the driver's cursor: the rows, as dicts.

        For the statements run once or twice per delivery: SQLAlchemy's execution context
        and result objects around a driver call were 11% of an attempt's CPU (py-spy, the
        claim returning 30 columns), the rows being the driver's values either way (a
        prepared statement's rows skip type processing). The connection itself stays
        SQLAlchemy's: taking the pool's raw connection instead saved nothing measurable (the
        pool's checkout and checkin are the cost, either way). A driver error is raised as the
        :class:`~sqlalchemy.exc.DBAPIError` SQLAlchemy raises, and a lost connection
        invalidates the pool as SQLAlchemy does (:func:`webhooks.core.db.retry_on_disconnect`
        relies on both).
        """
        fairy = connection.connection
        prepared: set[str] = fairy.info.setdefault(_PREPARED_KEY, set())
        cursor = fairy.cursor()
        try:
            if self.name not in prepared:
                cursor.execute(self._prepare)
                prepared.add(self.name)
            cursor.execute(self._execute, dict(values))
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except connection.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(connection, exc, cursor, self._execute, values) from exc
        finally:
            cursor.close()


def _wrapped(
    connection: Connection, exc: Exception, cursor: Any, statement: str, values: Mapping[str, Any]
) -> DBAPIError:
    """The error SQLAlchemy's own execution raises for the driver's ``exc``, with its effect
    on the pool: on a disconnect, this connection and every one pooled before it are
    replaced (their server may have restarted)."""
    dialect = connection.dialect
    disconnect = dialect.is_disconnect(
        cast(Any, exc), connection.connection.dbapi_connection, cursor
    )
    if disconnect:
        connection.engine.pool._invalidate(connection.connection, exc)  # as Connection does
        connection.invalidate(exc)
    error = DBAPIError.instance(
        statement,
        dict(values),
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=connection.engine.hide_parameters,
        connection_invalidated=disconnect,
        dialect=dialect,
    )
    assert isinstance(error, DBAPIError)
    return error
