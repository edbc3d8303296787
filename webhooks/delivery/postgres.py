"""The engine's Postgres path: one prepared statement to claim, one to record.

Each runs on an autocommit connection and commits on its own (no ``BEGIN`` / ``COMMIT``
round trips), on the driver's cursor (:meth:`PreparedStatement.rows`: no ORM objects, no
SQLAlchemy result objects). The SQL is the portable path's
(:mod:`webhooks.delivery.state`, :mod:`webhooks.delivery.job`,
:mod:`webhooks.history.recording`), composed here with Postgres's data-modifying CTEs so
that each step is a single statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhooks.core.db import autocommit_engine, retry_on_disconnect
from webhooks.core.dialects import POSTGRES
from webhooks.core.prepared import PreparedStatement
from webhooks.delivery import state
from webhooks.delivery.job import load_sql
from webhooks.delivery.state import Written
from webhooks.history import partitions
from webhooks.history.recording import insert_attempt_sql

#: The claim and the load of what the attempt needs. Claims of one endpoint take turns on
#: an advisory lock first, so that each counts the endpoint's live claims after the one
#: before it committed: the in-flight cap holds exactly under any concurrency. The lock is
#: held until the commit, which therefore does not wait for its WAL flush (one endpoint's
#: claims would otherwise go at the disk's flush rate): a crash of Postgres can lose the
#: last claims, and the next claim then has the same count but another lease, so the lost
#: claims' attempts are recorded as stale (their sends are the crash's duplicates).
_CLAIM = PreparedStatement(
    "webhooks_claim",
    f"WITH claimed AS ({state.claim_sql(POSTGRES)}) {load_sql('claimed')}",
    (("id", "text"), ("cap", "integer"), ("lease_base", "double precision")),
    first=(
        "SET LOCAL synchronous_commit = off; "
        "SELECT pg_advisory_xact_lock(1751474027, hashtext(endpoint_id)) "
        "FROM deliveries WHERE id = :id"
    ),
)

#: The record: the delivery's new state (fenced by its claim), the endpoint's health, the
#: attempt row, which is marked stale when the claim was lost, and the release of one
#: delivery deferred behind the endpoint's cap into the slot a success freed. The attempt's
#: id is chosen before the first try, so a retry after a lost reply adds no second row.
_RECORD = PreparedStatement(
    "webhooks_record",
    f"""
    WITH held AS ({state.record_sql(POSTGRES)}),
    health AS ({state.health_sql(POSTGRES, held="EXISTS (SELECT 1 FROM held)")}),
    attempt AS ({insert_attempt_sql(stale="NOT EXISTS (SELECT 1 FROM held)")}),
    released AS ({state.release_sql(POSTGRES, held="EXISTS (SELECT 1 FROM held)")})
    SELECT (SELECT status FROM held) AS status,
           (SELECT disabled_reason FROM health) AS disabled_reason,
           (SELECT id FROM released) AS id,
           (SELECT event_type FROM released) AS event_type,
           (SELECT attempts FROM released) AS attempts
    """,
    (
        ("id", "text"),
        ("tenant_id", "text"),
        ("delivery_id", "text"),
        ("endpoint_id", "text"),
        ("attempt", "integer"),
        ("started_at", "timestamptz"),
        ("duration_ms", "integer"),
        ("request_url", "text"),
        ("request_headers", "jsonb"),
        ("request_body", "text"),
        ("response_status", "integer"),
        ("response_headers", "jsonb"),
        ("response_body", "text"),
        ("error", "text"),
        ("status", "text"),
        ("due_in", "double precision"),
        ("stamp", "boolean"),
        ("claim", "integer"),
        ("lease", "timestamptz"),
        ("ok", "boolean"),
        ("gone_reason", "text"),
        ("days", "integer"),
        ("disable_after", "double precision"),
    ),
)


def claim(delivery_id: str) -> Mapping[str, Any] | None:
    """Claim the delivery; its row for :meth:`webhooks.delivery.job.Job.from_row`, or None."""

    def run() -> Mapping[str, Any] | None:
        with autocommit_engine().connect() as connection:
            rows = _CLAIM.rows(connection, state.claim_parameters(delivery_id))
            return rows[0] if rows else None

    return retry_on_disconnect(run)


def record(parameters: Mapping[str, Any]) -> Written:
    """Write the attempt (:func:`webhooks.delivery.state.record_parameters`), creating its
    day's partition if it is missing (:func:`webhooks.history.partitions.routed`)."""

    def run() -> Written:
        with autocommit_engine().connect() as connection:
            (row,) = _RECORD.rows(connection, parameters)
        released = state.released_delivery(parameters["endpoint_id"], row)
        return Written(row["status"], row["disabled_reason"], released)

    return partitions.routed(run, parameters["delivery_id"])
