"""Server-side prepared statements (Postgres only): the hot paths' single statements
(:class:`PreparedStatement`), and the history's reads of the partitioned ``attempts`` on generic
plans (:func:`generic`).

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

import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Executable,
    Select,
    TextClause,
    bindparam,
    column,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.sqltypes import NullType

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


_GENERIC_KEY = "webhooks_generic"
#: The most generic-plan statements kept prepared on one connection: each holds a plan over
#: every partition of ``attempts``, and the statements differ with the length of ``IN``
#: lists and the filters a page combines, so the least recently used ones are deallocated.
GENERIC_PER_CONNECTION = 64
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def generic(session: Session, query: Select[Any]) -> Executable:
    """``query`` as the ``EXECUTE`` of a statement prepared on the session's connection and
    run with a generic plan (``plan_cache_mode = force_generic_plan``): planned once per
    connection, not on every call. Unchanged on SQLite.

    For the history's reads of ``attempts``, which Postgres partitions by the delivery's id
    (:mod:`webhooks.history.partitions`): a read bounded by time or by the attempt's id
    cannot be pruned, and planning it over every daily partition cost 4-8 times its
    execution (about 2 ms against 0.3 ms with 49 partitions, more on a busy machine). A
    generic plan holds every partition already; what remains per call is starting each
    partition's scan. Meant for the caller's own transaction (the ORM session):
    a ``PREPARE`` is not undone by a rollback, and the plan-cache setting is sent again with
    every ``EXECUTE`` (a rollback undoes it); it changes nothing on this pool but these
    statements, the only prepared ones on it (the hot paths' are on the autocommit pool).

    A generic plan knows no parameter's value, so integers are written into the statement
    instead: with ``LIMIT $2`` Postgres plans for a tenth of the rows (49,784 of an endpoint's
    half a million attempts on a 5 M history) and chose to sort them all, 46-58 ms a page
    against 1.4-1.8 ms; with ``LIMIT 51`` it merges the partitions' index scans. The query's
    constants that a partial index's predicate must match (``response_status < 200``) have
    to be SQL literals for the same reason. Strings and times stay parameters.
    The result is what ``session.execute`` of ``query`` gives: rows of its columns, or its
    entity's objects for ``select(Entity)``.
    """
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        return query
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    types = {key: bind.type for key, bind in compiled.binds.items() if not key.startswith("%(")}
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        key = match.group(1)
        value = compiled.params[key]
        if type(value) is int:  # a LIMIT, a bucket's number: known to the plan, see above
            return f"({value})"
        if key not in names:
            names.append(key)
        return f"${names.index(key) + 1}"

    body = _PLACEHOLDER.sub(number, compiled.string).replace("%%", "%")
    name = "webhooks_g_" + hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()[:20]
    prepared: OrderedDict[str, None] = connection.connection.info.setdefault(
        _GENERIC_KEY, OrderedDict()
    )
    if name in prepared:
        prepared.move_to_end(name)
    else:
        declared = ", ".join(_declared(_type_of(types, key), dialect) for key in names)
        connection.exec_driver_sql(f"PREPARE {name} ({declared}) AS {body}")
        prepared[name] = None
        while len(prepared) > GENERIC_PER_CONNECTION:
            oldest, _ = prepared.popitem(last=False)
            connection.exec_driver_sql(f"DEALLOCATE {oldest}")
    arguments = ", ".join(f":p{index}" for index in range(len(names)))
    values = [
        bindparam(f"p{index}", compiled.params[key], type_=_type_of(types, key))
        for index, key in enumerate(names)
    ]
    execute = text(f"SET plan_cache_mode = force_generic_plan; EXECUTE {name} ({arguments})")
    execute = execute.bindparams(*values)
    [described, *others] = query.column_descriptions
    if not others and described["expr"] is described["entity"] is not None:
        entity = described["entity"]
        return select(entity).from_statement(execute.columns(*query.selected_columns))
    return execute.columns(*_result_columns(query))


def _result_columns(query: Select[Any]) -> list[ColumnClause[Any]]:
    """Typed columns matched by position to the query's (which may select one twice), each
    named as in the query where that name is not taken already."""
    columns: list[ColumnClause[Any]] = []
    for index, selected in enumerate(query.selected_columns):
        name = getattr(selected, "key", None) or f"_{index}"
        if any(taken.name == name for taken in columns):
            name = f"{name}_{index}"
        columns.append(column(name, selected.type))
    return columns


def _declared(type_: Any, dialect: Any) -> str:
    """The Postgres type a parameter is declared with: its column's or value's, so that a
    parameter in the select list comes back as what it is, not as text; ``unknown``
    (inferred from where it is used) for a value of no type."""
    return "unknown" if isinstance(type_, NullType) else str(type_.compile(dialect=dialect))


def _type_of(types: Mapping[str, Any], key: str) -> Any:
    """The type of parameter ``key``: its bind's, or for an element of an expanded ``IN``
    list (``name_1``, ``name_2``...) the list's."""
    return types[key] if key in types else types[key.rsplit("_", 1)[0]]
