"""Taking in an event: validate it, store it with one delivery per matching endpoint, publish.

:func:`enqueue_event` (producers) and :func:`ingest` (the API's ``POST .../events``) are one
code path, lean because producers wait on it. On Postgres one statement (:data:`_INGEST_SQL`)
finds the tenant, the type's schema and the matching endpoints and writes the event and all
its deliveries (a second run only when the type has a JSON Schema or a matching endpoint has a
payload ``filter``, once the payload has been checked against the one and evaluated against
the others, in Python on both databases: :mod:`webhooks.ingest.filters`); elsewhere one or two
queries look up and one or two statements write. It runs in
the caller's transaction, or, for ``enqueue_event`` without a session, on an autocommit
connection where the statement is its own transaction (one round trip in all). The tasks are
published only once the transaction has committed (:func:`webhooks.broker.publish_after_commit`
or straight after the autocommit statement), so a worker never looks for a row it cannot see
yet and a rolled-back event sends nothing.

Idempotency rests on the unique ``(tenant_id, idempotency_key)`` constraint, never on a
check-then-insert: the event is inserted with ``ON CONFLICT DO NOTHING``, and a conflict means
an earlier event with that key exists (Postgres makes a concurrent insert of the same key wait
for the first one's transaction), which is then returned and nothing else is created.

Which endpoints receive the event (:func:`webhooks.ingest.event_names.matching_sql`) and the
deliveries' rows (:func:`webhooks.delivery.state.new_deliveries_sql`) are the same SQL on
both databases. A delivery to a disabled endpoint is stored with no due time
(``next_attempt_at`` NULL): it waits until :func:`webhooks.delivery.state.release_waiting`
is called as the endpoint is enabled; so is one that the endpoint's controls would only park
(an open circuit, a rate limit's backlog: :func:`webhooks.delivery.waiting.parked_at_ingest_sql`),
until they release it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from referencing.exceptions import Unresolvable
from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Table,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef, publish_after_commit
from webhooks.core import clock
from webhooks.core.config import get_settings
from webhooks.core.db import (
    autocommit_engine,
    get_engine,
    library_error,
    retry_on_disconnect,
    session_scope,
)
from webhooks.core.dialects import POSTGRES, SQLITE, Dialect
from webhooks.core.errors import DatabaseUnavailable, InvalidInput, NotFound, PayloadTooLarge
from webhooks.core.ids import new_id
from webhooks.core.prepared import PreparedStatement
from webhooks.delivery.state import new_deliveries_sql
from webhooks.delivery.waiting import parked_at_ingest_sql
from webhooks.ingest.event_names import matching_sql, validate_name
from webhooks.ingest.filters import matches as passes
from webhooks.ingest.schema_validation import first_error
from webhooks.models import Delivery, Endpoint, Event, EventType, Tenant
from webhooks.models.base import UTCDateTime
from webhooks.ops import metrics
from webhooks.outbound.request import envelope

#: A NUL character in the serialized JSON: ``\u0000`` not preceded by an escaped backslash.
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

_MAX_KEY_LENGTH = 200

# The tables, for Core statements: the hot path skips the ORM's per-statement work.
_TENANTS = cast(Table, Tenant.__table__)
_EVENT_TYPES = cast(Table, EventType.__table__)
_EVENTS = cast(Table, Event.__table__)
_ENDPOINTS = cast(Table, Endpoint.__table__)


def _targets_sql(db: Dialect, tenant_id: str) -> str:
    """The CTEs ``matched (id, enabled, filter, ...)`` and ``targets (id, due)``: the
    endpoints of the tenant ``tenant_id`` (SQL) that receive ``:type``, and of those with a
    payload filter the ones listed in ``:passed`` (a JSON array of ids: their filters were
    evaluated against the event by the caller). A delivery is due at once unless its endpoint
    is disabled or its controls would only park it
    (:func:`webhooks.delivery.waiting.parked_at_ingest_sql`).

    A disabled endpoint is read again under a share lock, which waits for a transaction
    enabling it: either that transaction commits first and the delivery is due now, or this
    one does and the enabling releases the delivery it parked (see
    :func:`webhooks.delivery.state.release_waiting`).
    """
    return f"""
    matched AS (
        SELECT e.id, e.enabled, e.rate_limit, e.ordering, e.circuit,
               CASE WHEN {db.json_type("e.filter")} = 'object' THEN e.filter END AS filter
        FROM endpoints AS e
        WHERE e.tenant_id = {tenant_id} AND {matching_sql(db, "e.event_types")}
    ),
    passing AS (
        SELECT id, enabled, rate_limit, ordering, circuit FROM matched
        WHERE filter IS NULL
           OR id IN (SELECT f.value FROM {db.elements(db.json_text(":passed"))})
    ),
    paused AS (
        SELECT e.id, e.enabled FROM endpoints AS e
        WHERE e.id IN (SELECT id FROM passing WHERE NOT enabled) {db.for_share}
    ),
    targets AS (
        SELECT passing.id,
               CASE WHEN COALESCE(paused.enabled, passing.enabled)
                    THEN NOT ({parked_at_ingest_sql(db, "passing")}) ELSE false END AS due
        FROM passing LEFT JOIN paused ON paused.id = passing.id
    )
    """


#: On Postgres the whole of an ingestion is this one statement: find the tenant, the type's
#: schema and the matching endpoints, insert the event and one delivery per endpoint, and
#: report it all. The event is inserted only if the type has no schema and no matching
#: endpoint a filter, or else once the caller has checked the payload against the schema and
#: evaluated the filters this first run returned (``:validated``, and ``:passed`` the
#: endpoints whose filter matched), and only once (``ON CONFLICT DO NOTHING``: a
#: duplicate idempotency key, or this very event inserted by a first try, inserts nothing).
#: The deliveries are :func:`webhooks.delivery.state.new_deliveries_sql`'s. One row per
#: delivery (one with NULLs when there is none); no row at all for an unknown tenant.
_INGEST_SQL = """
WITH tenant AS (
    SELECT id FROM tenants WHERE {tenant_column} = :tenant
),
type_schema AS (
    SELECT et.schema FROM event_types AS et JOIN tenant ON et.tenant_id = tenant.id
    WHERE et.name = :type AND et.schema IS NOT NULL AND jsonb_typeof(et.schema) <> 'null'
),
{targets},
new_event AS (
    INSERT INTO events (id, tenant_id, type, data, timestamp, idempotency_key, created_at)
    SELECT :id, tenant.id, :type, CAST(:data AS jsonb), :timestamp, :key, :now FROM tenant
    WHERE CAST(:validated AS boolean)
       OR (NOT EXISTS (SELECT 1 FROM type_schema)
           AND NOT EXISTS (SELECT 1 FROM matched WHERE matched.filter IS NOT NULL))
    ON CONFLICT DO NOTHING
    RETURNING id, tenant_id
),
new_deliveries AS ({deliveries})
SELECT tenant.id AS tenant_id,
       (SELECT schema FROM type_schema) AS schema,
       EXISTS (SELECT 1 FROM new_event) AS created,
       d.id, d.endpoint_id, d.due,
       (SELECT jsonb_agg(jsonb_build_array(matched.id, matched.filter)) FROM matched
        WHERE matched.filter IS NOT NULL) AS filters
FROM tenant LEFT JOIN new_deliveries AS d ON true
"""

#: Elsewhere (SQLite), after the event was inserted: the same targets and deliveries.
_DELIVERIES_SQL = text(
    f"WITH {_targets_sql(SQLITE, ':tenant_id')} "
    + new_deliveries_sql(
        SQLITE, event="(SELECT :event_id AS id, :tenant_id AS tenant_id) AS new_event"
    )
).bindparams(bindparam("now", type_=UTCDateTime()))

#: Elsewhere, before the event is inserted: the filters of the matching endpoints that have one.
_FILTERS_SQL = text(
    f"WITH {_targets_sql(SQLITE, ':tenant_id')} "
    "SELECT id, filter FROM matched WHERE filter IS NOT NULL"
).columns(filter=_ENDPOINTS.c.filter.type)


def _passed(filters: Sequence[Sequence[Any]], body: dict[str, Any]) -> str:
    """Of ``(endpoint id, filter)`` pairs, the ids of those whose filter the event's envelope
    ``body`` passes, as the JSON array ``:passed`` of :func:`_targets_sql`."""
    return json.dumps([endpoint_id for endpoint_id, filter_ in filters if passes(filter_, body)])


_INGEST_PARAMETERS = (
    ("tenant", "text"),
    ("type", "text"),
    ("id", "text"),
    ("data", "text"),
    ("timestamp", "timestamptz"),
    ("key", "text"),
    ("now", "timestamptz"),
    ("validated", "boolean"),
    ("passed", "text"),
)


def _ingest_statement(tenant_column: str) -> PreparedStatement:
    """The statement for one way of naming the tenant: prepared for ``enqueue_event``'s own
    autocommit connection, as text in a caller's transaction (see webhooks.core.prepared)."""
    sql = _INGEST_SQL.format(
        tenant_column=tenant_column,
        targets=_targets_sql(POSTGRES, "(SELECT id FROM tenant)"),
        deliveries=new_deliveries_sql(POSTGRES, event="new_event"),
    )
    return PreparedStatement(f"webhooks_ingest_by_{tenant_column}", sql, _INGEST_PARAMETERS)


_INGEST_BY_ID = _ingest_statement("id")
_INGEST_BY_UID = _ingest_statement("uid")


@dataclass(frozen=True)
class IngestResult:
    """The event (the first one when its idempotency key was seen before) and its deliveries."""

    event: Event
    #: False when an event with the same idempotency key existed: nothing was created.
    created: bool
    #: How many deliveries the event has (one per endpoint that matched when it was created).
    deliveries: int


def enqueue_event(
    event_type: str,
    data: dict[str, Any],
    *,
    tenant: str,
    idempotency_key: str | None = None,
    timestamp: datetime | str | None = None,
    session: Session | None = None,
) -> str:
    """Store an event and its deliveries, publish them after the commit; return the event id.

    ``tenant`` is a tenant's id or uid. With ``session`` the rows join the caller's
    transaction and are published only if it commits (the caller commits); without, this
    commits on its own before returning. Raises :class:`~webhooks.core.errors.WebhooksError`
    subclasses: unknown tenant, invalid or too large payload, database unreachable.
    """
    request = _Request(
        tenant,
        event_type,
        data,
        idempotency_key,
        _as_datetime(timestamp),
        by_id=tenant.startswith("ten_"),
    )
    with _database_errors():
        if session is not None:
            return _store(session, request).event.id
        if get_engine().dialect.name == "postgresql":
            return _store_alone(request)
        with session_scope() as own:
            return _store(own, request).event.id


def ingest(
    session: Session,
    *,
    tenant: Tenant,
    event_type: str,
    data: Any,
    idempotency_key: str | None = None,
    timestamp: datetime | None = None,
) -> IngestResult:
    """Validate and store one event with its deliveries in ``session``'s transaction.

    The caller commits; the deliveries' tasks are published after that commit. The event
    returned is not added to the session (it is written with Core, to stay lean).
    """
    request = _Request(tenant.id, event_type, data, idempotency_key, timestamp, by_id=True)
    return _store(session, request)


@dataclass(frozen=True)
class _Request:
    tenant_ref: str
    event_type: str
    data: Any
    idempotency_key: str | None
    timestamp: datetime | None
    #: Whether ``tenant_ref`` is the tenant's id (else its uid).
    by_id: bool = True

    @property
    def which_tenant(self) -> ColumnElement[bool]:
        """The tenant as a Core condition (built only off the hot path: it costs 0.1 ms)."""
        column = _TENANTS.c.id if self.by_id else _TENANTS.c.uid
        return column == self.tenant_ref


@dataclass(frozen=True)
class _Match:
    """A delivery created: its id, its endpoint, and whether it is due (else parked)."""

    id: str
    endpoint_id: str
    due: bool


@dataclass(frozen=True)
class _Written:
    """What the one Postgres statement did."""

    tenant_id: str
    #: False when nothing was inserted: an event with the same idempotency key exists.
    created: bool
    matched: list[_Match]
    #: The earlier event's id, when not ``created`` because of a repeated idempotency key.
    first_event_id: str | None = None


def _validate(request: _Request) -> str:
    """Everything checked before the database is asked; the payload as stored JSON."""
    validate_name(request.event_type)
    _check_key(request.idempotency_key)
    return _check_payload(request.data)


def _write_postgres(
    executor: Session | Connection, request: _Request, event_id: str, payload: str, now: datetime
) -> _Written:
    """The one statement (twice when the type has a schema or a matching endpoint a filter:
    before and after checking them)."""
    statement = _INGEST_BY_ID if request.by_id else _INGEST_BY_UID

    def run(params: dict[str, Any]) -> Sequence[Any]:
        if isinstance(executor, Connection):  # enqueue_event's own autocommit connection
            return statement.execute(executor, params).all()
        return executor.execute(statement.text, params).all()

    params = {
        "tenant": request.tenant_ref,
        "id": event_id,
        "type": request.event_type,
        "data": payload,
        "timestamp": request.timestamp or now,
        "key": request.idempotency_key,
        "now": now,
        "validated": False,
        "passed": "[]",
    }
    rows = run(params)
    if rows and not rows[0][2] and (rows[0][1] is not None or rows[0][6] is not None):
        # A JSON Schema or filters, and nothing was written: check and evaluate, then write.
        _check_schema(rows[0][1], request.event_type, request.data)
        body = envelope(event_id, request.event_type, request.timestamp or now, request.data)
        params["passed"] = _passed(rows[0][6] or [], body)
        params["validated"] = True
        rows = run(params)
    if not rows:
        raise NotFound(f"no tenant {request.tenant_ref!r}")
    matched = [_Match(row[3], row[4], row[5]) for row in rows if row[3] is not None]
    return _Written(rows[0][0], bool(rows[0][2]), matched)


def _refs(event_type: str, matched: list[_Match]) -> list[DeliveryRef]:
    # Parked deliveries wait for their endpoint (enabling it, its controls: see _targets_sql).
    return [DeliveryRef(m.id, m.endpoint_id, event_type) for m in matched if m.due]


def _store_alone(request: _Request) -> str:
    """``enqueue_event`` in a transaction of its own, on Postgres: one round trip.

    The single statement commits by itself (no BEGIN, no COMMIT round trips), then the
    deliveries are published. A dropped connection is retried once: the event id stays the
    same, so a first try that did commit makes the second insert nothing (its deliveries'
    messages are then left to the sweeper).
    """
    payload = _validate(request)
    event_id = new_id("evt")
    now = clock.now()

    def write() -> _Written:
        with autocommit_engine().connect() as connection:
            written = _write_postgres(connection, request, event_id, payload, now)
            if written.created or request.idempotency_key is None:
                return written
            first = connection.execute(
                _FIRST_EVENT_ID,
                {"tenant_id": written.tenant_id, "key": request.idempotency_key},
            ).scalar()
            if first is None:  # pragma: no cover - only under stricter isolation
                raise DatabaseUnavailable("a duplicate event is being written; try again")
            return _Written(written.tenant_id, False, [], first)

    written = retry_on_disconnect(write)
    if not written.created:
        # A repeated key, or a retry after a first try that committed (no key: same id).
        return written.first_event_id or event_id
    metrics.event_ingested(len(written.matched))
    broker.publish(_refs(request.event_type, written.matched))
    return event_id


def _store(session: Session, request: _Request) -> IngestResult:
    """The one code path: validate, look up, insert the event, then its deliveries."""
    payload = _validate(request)
    now = clock.now()
    if session.get_bind().dialect.name == "postgresql":
        event_id = new_id("evt")
        written = _write_postgres(session, request, event_id, payload, now)
        if not written.created:
            first = _existing(session, written.tenant_id, request.idempotency_key)
            return IngestResult(first, False, _delivery_count(session, first.id))
        event = _event(event_id, written.tenant_id, request, now)
        publish_after_commit(session, _refs(event.type, written.matched))
        metrics.event_ingested(len(written.matched))
        return IngestResult(event, True, len(written.matched))
    tenant_id, schema = _lookup(session, request)
    _check_schema(schema, request.event_type, request.data)
    event = _event(new_id("evt"), tenant_id, request, now)
    filters = session.execute(
        _FILTERS_SQL, {"tenant_id": tenant_id, "type": event.type, "passed": "[]"}
    ).all()
    body = envelope(event.id, event.type, event.timestamp, event.data)
    matched = _write(session, event, _passed(filters, body))
    if matched is None:
        first = _existing(session, tenant_id, request.idempotency_key)
        return IngestResult(first, False, _delivery_count(session, first.id))
    publish_after_commit(session, _refs(event.type, matched))
    metrics.event_ingested(len(matched))
    return IngestResult(event, True, len(matched))


def _event(event_id: str, tenant_id: str, request: _Request, now: datetime) -> Event:
    return Event(
        id=event_id,
        tenant_id=tenant_id,
        type=request.event_type,
        data=request.data,
        timestamp=request.timestamp or now,
        idempotency_key=request.idempotency_key,
        created_at=now,
    )


_FIRST_EVENT_ID = text(
    "SELECT id FROM events WHERE tenant_id = :tenant_id AND idempotency_key = :key"
)


def _lookup(session: Session, request: _Request) -> tuple[str, dict[str, Any] | None]:
    """The tenant's id and the type's schema, in one round trip."""
    schema = (
        select(_EVENT_TYPES.c.schema)
        .where(
            _EVENT_TYPES.c.tenant_id == _TENANTS.c.id,
            _EVENT_TYPES.c.name == request.event_type,
        )
        .scalar_subquery()
    )
    row = session.execute(select(_TENANTS.c.id, schema).where(request.which_tenant)).first()
    if row is None:
        raise NotFound(f"no tenant {request.tenant_ref!r}")
    return row[0], row[1]


@contextmanager
def _database_errors() -> Iterator[None]:
    """Say :class:`DatabaseUnavailable` when the server could not be reached, and
    :class:`SchemaMissing` when it has no schema yet."""
    try:
        yield
    except DBAPIError as exc:
        error = library_error(exc)
        if error is not None:
            raise error from exc
        raise


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(
                f"timestamp {value!r} is not an ISO 8601 / RFC 3339 time", field="timestamp"
            ) from None
    if value is not None and value.tzinfo is None:
        raise InvalidInput("timestamp must have a time zone (e.g. a trailing Z)", "timestamp")
    return value


def _check_key(key: str | None) -> None:
    if key is not None and not 0 < len(key) <= _MAX_KEY_LENGTH:
        raise InvalidInput(
            f"idempotency_key must be 1 to {_MAX_KEY_LENGTH} characters", field="idempotency_key"
        )


def _check_payload(data: Any) -> str:
    """A JSON object, serialisable, within the size limit, storable by Postgres (no NUL)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"data must be a JSON object, not {type(data).__name__}", "data")
    try:
        serialized = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"data is not JSON-serialisable: {exc}", field="data") from None
    limit = get_settings().max_payload_bytes
    size = len(serialized.encode())
    if size > limit:
        raise PayloadTooLarge(
            f"data is {size} bytes of JSON, more than the {limit} allowed", field="data"
        )
    if _NUL.search(serialized):
        raise InvalidInput(
            "data contains a NUL character (\\u0000), which the database cannot store in JSON",
            field="data",
        )
    return serialized


def _check_schema(schema: dict[str, Any] | None, event_type: str, data: Any) -> None:
    """Match ``data`` against the type's JSON Schema from the tenant's catalogue, if any, in
    bounded time (:class:`~webhooks.ingest.schema_validation.SchemaBudgetExceeded`)."""
    if schema is None:
        return
    try:
        error = first_error(schema, data)
    except (RecursionError, Unresolvable):
        # A schema can be valid and still unusable (``{"$ref": "#"}`` recurses forever).
        raise InvalidInput(
            f"the schema of {event_type} cannot be applied (a $ref that loops or does not "
            "resolve); fix the event type's schema",
            field="data",
        ) from None
    if error is not None:
        field = ".".join(["data", *(str(part) for part in error.absolute_path)])
        raise InvalidInput(
            f"{field} does not match the schema of {event_type}: {error.message}", field=field
        )


def _write(session: Session, event: Event, passed: str) -> list[_Match] | None:
    """Insert the event and its deliveries; None (and nothing written) for a duplicate key.

    Not Postgres (which has :data:`_INGEST_SQL`): the event goes first and the deliveries
    follow if it was new (``passed``: see :func:`_passed`).
    """
    values = {column.key: getattr(event, column.key) for column in _EVENTS.columns}
    statement = _insert_ignoring_conflicts(session).values(values).returning(_EVENTS.c.id)
    if session.execute(statement).first() is None:
        return None
    rows = session.execute(
        _DELIVERIES_SQL,
        {
            "type": event.type,
            "tenant_id": event.tenant_id,
            "event_id": event.id,
            "now": event.created_at,
            "passed": passed,
        },
    )
    return [_Match(row[0], row[1], bool(row[2])) for row in rows]


def _insert_ignoring_conflicts(session: Session) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(_EVENTS).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(_EVENTS).on_conflict_do_nothing()
    raise NotImplementedError(f"no idempotent insert for {dialect}")  # pragma: no cover


def _existing(session: Session, tenant_id: str, key: str | None) -> Event:
    event = session.scalar(
        select(Event).where(Event.tenant_id == tenant_id, Event.idempotency_key == key)
    )
    if event is None:  # pragma: no cover - only under isolation stricter than read committed
        raise DatabaseUnavailable("a duplicate event is being written; try again")
    return event


def _delivery_count(session: Session, event_id: str) -> int:
    return session.scalar(select(func.count()).where(Delivery.event_id == event_id)) or 0
