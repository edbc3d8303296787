"""Liveness: the process answers. (Readiness, which checks dependencies, is ``/readyz``.)"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from api.blueprint import Blueprint

blp = Blueprint("health", __name__, description="Probes for orchestrators.")


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok"]})


@blp.route("/healthz", methods=["GET"])
@blp.doc(security=[])
@blp.response(200, HealthSchema)
def healthz() -> dict[str, Any]:
    """Liveness probe: 200 while the process can answer requests."""
    return {"status": "ok"}
