"""``GET .../endpoints/{id}/stats``: an endpoint's health over 1 h, 24 h and 7 d.

The numbers are :func:`webhooks.history.stats.endpoint_stats`; this module only shapes them.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.fields import Timestamp
from webhooks.admin import endpoints as rules
from webhooks.delivery.circuit import CircuitState
from webhooks.history.stats import WINDOWS, EndpointStats, endpoint_stats
from webhooks.models import Tenant

blp = Blueprint(
    "endpoint-stats",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/endpoints/<id:endpoint_id>",
    description="Endpoint health statistics.",
)


class DeliveryCountsSchema(Schema):
    pending = fields.Integer(required=True)
    retrying = fields.Integer(required=True)
    succeeded = fields.Integer(required=True)
    failed = fields.Integer(required=True)


class LatencySchema(Schema):
    p50 = fields.Float(required=True, allow_none=True)
    p95 = fields.Float(required=True, allow_none=True)


class PingStatsSchema(Schema):
    attempts = fields.Integer(required=True)
    succeeded = fields.Integer(required=True)


class WindowStatsSchema(Schema):
    deliveries = fields.Nested(
        DeliveryCountsSchema,
        required=True,
        metadata={"description": "Deliveries created in the window, by current state"},
    )
    attempts = fields.Integer(
        required=True,
        metadata={"description": "Delivery attempts started in the window (PINGs: see pings)"},
    )
    succeeded_attempts = fields.Integer(required=True)
    success_rate = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "succeeded_attempts / attempts (4 decimals); null without attempts"
        },
    )
    latency_ms = fields.Nested(
        LatencySchema,
        required=True,
        metadata={
            "description": "Delivery attempt durations: percentile_cont 0.5 and 0.95, in whole"
            " ms; exact over attempts counted live (1 h), within one histogram bucket (6.25%)"
            " over the hours rolled up on Postgres (docs/console.md)"
        },
    )
    pings = fields.Nested(
        PingStatsSchema,
        required=True,
        metadata={"description": "PINGs started in the window, apart from deliveries"},
    )


class LastFailureSchema(Schema):
    at = Timestamp(required=True)
    status = fields.Integer(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True)


class EndpointStatsSchema(Schema):
    endpoint_id = fields.String(required=True)
    generated_at = Timestamp(required=True)
    circuit = fields.String(
        required=True,
        metadata={
            "enum": [str(state) for state in CircuitState],
            "description": "The circuit breaker now: closed, open or half_open",
        },
    )
    windows = fields.Dict(
        keys=fields.String(metadata={"enum": list(WINDOWS)}),
        values=fields.Nested(WindowStatsSchema),
        required=True,
        metadata={"description": "Keyed 1h, 24h and 7d"},
    )
    last_success_at = Timestamp(required=True, allow_none=True)
    last_failure = fields.Nested(LastFailureSchema, required=True, allow_none=True)


@blp.route("/stats", methods=["GET"])
@tenant_access("endpoints:read")
@blp.response(200, EndpointStatsSchema)
def stats(tenant: Tenant, endpoint_id: str) -> EndpointStats:
    """Counts by state, success rate and latency over 1 h / 24 h / 7 d; last outcomes."""
    endpoint = rules.get_endpoint(db.session(), tenant.id, endpoint_id)
    return endpoint_stats(db.session(), endpoint)
