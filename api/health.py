"""Probes: ``/healthz`` (liveness: the process answers) and ``/readyz`` (readiness: its
database and broker answer within a second each).

Liveness checks nothing outside the process, so a database outage never gets every API
process restarted at once; readiness takes an instance out of rotation instead.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response
from marshmallow import Schema, fields

from api.blueprint import Blueprint
from api.errors import ProblemSchema, problem
from webhooks.ops import readiness

log = logging.getLogger("api.health")

blp = Blueprint("health", __name__, description="Probes for orchestrators.")


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok"]})


class ReadySchema(Schema):
    database = fields.String(required=True, metadata={"enum": ["ok"]})
    broker = fields.String(required=True, metadata={"enum": ["ok"]})


@blp.route("/healthz", methods=["GET"])
@blp.doc(security=[])
@blp.response(200, HealthSchema)
def healthz() -> dict[str, Any]:
    """Liveness probe: 200 while the process can answer requests."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.doc(security=[])
@blp.response(200, ReadySchema)
@blp.alt_response(503, schema=ProblemSchema, description="A dependency did not answer")
def readyz() -> dict[str, Any] | Response:
    """Readiness probe: the database (``SELECT 1``) and the broker each answered within 1 s.

    A 503 names the failed dependencies; why they failed goes to the log only (this route is
    unauthenticated, and host names or driver messages are nobody else's business).
    """
    results = readiness.check_all()
    failed = sorted(name for name, result in results.items() if result != "ok")
    if not failed:
        return {"database": "ok", "broker": "ok"}
    for name in failed:
        log.warning("readyz: %s failed: %s", name, results[name])
    return problem(
        503,
        f"not ready: {' and '.join(failed)} did not answer within {readiness.BUDGET:g}s",
        [{"field": name, "message": "unavailable"} for name in failed],
    )
