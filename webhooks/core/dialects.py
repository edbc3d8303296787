"""The SQL that differs between the two databases the library runs on (Postgres, SQLite).

Statements that must agree on time between hosts use the database's clock, never the
application host's: :attr:`Dialect.now` and :meth:`Dialect.later` in SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Dialect:
    """The SQL that differs between the databases: the clock, random bits for ids, JSON.

    "Now" is the statement's start on Postgres (one value for every row of a statement) and
    SQLite's ``'now'``, formatted as SQLAlchemy stores times there so that they compare as
    text.
    """

    name: str
    now: str
    _later: str
    _seconds_until: str
    #: 64 random bits as 16 hexadecimal digits (upper case: valid in a ULID).
    random_hex: str
    _elements: str
    #: The row lock a reader takes to wait for a writer of the row (none on SQLite, where
    #: writers are serialised anyway).
    for_share: str
    #: The row lock a statement takes on rows it will change, passing over rows another
    #: transaction holds (none on SQLite).
    skip_locked: str
    _json_type: str
    _json_text: str

    def later(self, seconds: str) -> str:
        """The time ``seconds`` (an SQL expression) from now."""
        return self._later.format(seconds=seconds)

    def seconds_until(self, moment: str) -> str:
        """The seconds from now until ``moment`` (an SQL time expression), as a float:
        negative for a moment past, NULL for NULL."""
        return self._seconds_until.format(moment=moment)

    def json_type(self, value: str) -> str:
        """The JSON type (``object``, ``array``, ``null``, ...) of the JSON ``value`` (SQL)."""
        return self._json_type.format(value=value)

    def json_text(self, parameter: str) -> str:
        """A parameter holding JSON text, as a JSON value."""
        return self._json_text.format(parameter=parameter)

    def elements(self, column: str) -> str:
        """The strings of a JSON array ``column`` as a relation ``f (value)`` (none for
        anything but an array)."""
        return self._elements.format(column=column)


POSTGRES = Dialect(
    "postgresql",
    "statement_timestamp()",
    "(statement_timestamp() + make_interval(secs => {seconds}))",
    "CAST(EXTRACT(EPOCH FROM ({moment}) - statement_timestamp()) AS float)",
    "upper(substr(md5(CAST(gen_random_uuid() AS text)), 1, 16))",
    "jsonb_array_elements_text(CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} END)"
    " AS f (value)",
    "FOR SHARE",
    "FOR UPDATE SKIP LOCKED",
    "jsonb_typeof({value})",
    "CAST({parameter} AS jsonb)",
)
SQLITE = Dialect(
    "sqlite",
    "strftime('%Y-%m-%d %H:%M:%f000', 'now')",
    "strftime('%Y-%m-%d %H:%M:%f000', 'now', printf('%+.6f seconds', {seconds}))",
    "((julianday({moment}) - julianday('now')) * 86400.0)",
    "hex(randomblob(8))",
    "json_each(CASE WHEN json_type({column}) = 'array' THEN {column} END) AS f",
    "",
    "",
    "json_type({value})",
    "{parameter}",
)


def dialect(name: str) -> Dialect:
    return POSTGRES if name == "postgresql" else SQLITE


def session_dialect(session: Session) -> Dialect:
    return dialect(session.get_bind().dialect.name)
