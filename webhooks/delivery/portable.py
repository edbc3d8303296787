"""The engine's portable path (SQLite, the embedded default): the same SQL as the Postgres
path, as several statements in one transaction where Postgres composes them into one.

SQLite runs one writer at a time, so each transaction here is serialised against every
other write: the claim's in-flight count and the record's fencing need no lock of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from webhooks.core.db import session_scope
from webhooks.core.dialects import SQLITE
from webhooks.delivery import state
from webhooks.delivery.job import load_sql, load_types
from webhooks.delivery.state import Written
from webhooks.history import partitions
from webhooks.history.recording import insert_attempt_sql
from webhooks.models.base import UTCDateTime

_CLAIM = text(state.claim_sql(SQLITE))
_LOAD = text(
    load_sql(
        "(SELECT :attempts AS attempts, :claims AS claims, :lease AS lease,"
        " :event_id AS event_id,"
        " :endpoint_id AS endpoint_id) AS claimed"
    )
).columns(**load_types())
_RECORD = text(state.record_sql(SQLITE))
_HEALTH = text(state.health_sql(SQLITE, held=":held"))
_RELEASE = text(state.release_sql(SQLITE, held=":held"))
_ATTEMPT = text(insert_attempt_sql(stale=":stale")).bindparams(
    bindparam("started_at", type_=UTCDateTime())
)


def claim(delivery_id: str) -> Mapping[str, Any] | None:
    """Claim the delivery; its row for :meth:`webhooks.delivery.job.Job.from_row`, or None."""
    with session_scope() as session:
        claimed = session.execute(_CLAIM, state.claim_parameters(delivery_id)).mappings().first()
        if claimed is None:
            return None
        return load(session, dict(claimed))


def load(session: Session, claimed: Mapping[str, Any]) -> dict[str, Any]:
    """What the attempt of a claimed delivery reads (``claimed``: its ``attempts``,
    ``claims``, ``event_id`` and ``endpoint_id``), in ``session``'s transaction."""
    return dict(session.execute(_LOAD, dict(claimed)).mappings().one())


def record(parameters: Mapping[str, Any]) -> Written:
    """Write the attempt (:func:`webhooks.delivery.state.record_parameters`) in one
    transaction, run again if its day's partition was missing (on Postgres,
    :func:`webhooks.history.partitions.routed`)."""

    def run() -> Written:
        with session_scope() as session:
            status = session.execute(_RECORD, parameters).scalar()
            held = status is not None
            disabled_reason = session.execute(_HEALTH, {**parameters, "held": held}).scalar()
            session.execute(_ATTEMPT, {**parameters, "stale": not held})
            row = session.execute(_RELEASE, {**parameters, "held": held}).mappings().first()
            released = state.released_delivery(parameters["endpoint_id"], row)
        return Written(status, disabled_reason, released)

    return partitions.routed(run, parameters["delivery_id"])
