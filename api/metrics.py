"""``GET /metrics``: Prometheus text for a scraper (see :mod:`webhooks.ops.metrics`).

Unauthenticated, as scrapers expect: expose it on the internal network only (a reverse
proxy that does not route ``/metrics`` from outside, or a network policy). It reveals counts,
never a tenant, endpoint, payload or secret.
"""

from __future__ import annotations

from flask import Response

from api.blueprint import Blueprint
from webhooks.ops import metrics

blp = Blueprint("metrics", __name__, description="Prometheus metrics.")


@blp.route("/metrics", methods=["GET"])
@blp.doc(
    security=[],
    responses={
        "200": {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics_view() -> Response:
    """Counters summed over this host's processes, then the backlog read from the DB and broker."""
    return Response(metrics.exposition(), 200, content_type=metrics.CONTENT_TYPE)
