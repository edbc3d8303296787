"""``GET .../endpoints/{id}/attempts``: an endpoint's run history, newest first.

Every request made to the endpoint (deliveries' attempts and PINGs) with what was sent (URL,
headers with secrets redacted, body) and what came back (status, headers, the first 64 KiB of
the body) or the error: what an operator reads to see why a receiver is unhappy.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from api import db
from api.auth import tenant_access
from api.blueprint import Blueprint
from api.deliveries import AttemptPageSchema
from api.pagination import paginate
from api.windows import WindowArgs, window
from webhooks.admin import endpoints as rules
from webhooks.history.queries import ATTEMPT_STATUSES, endpoint_attempts_query
from webhooks.models import Attempt, Tenant

blp = Blueprint(
    "endpoint-attempts",
    __name__,
    url_prefix="/v1/tenants/<tenant:tenant>/endpoints/<id:endpoint_id>",
    description="Run history: every request made to an endpoint.",
)


class RunHistoryArgs(WindowArgs):
    status = fields.String(
        validate=validate.OneOf(ATTEMPT_STATUSES),
        metadata={"description": "succeeded: a 2xx in time; failed: anything else"},
    )


@blp.route("/attempts", methods=["GET"])
@tenant_access("events:read")
@blp.arguments(RunHistoryArgs, location="query")
@blp.response(200, AttemptPageSchema)
def run_history(args: dict[str, Any], tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    """The endpoint's attempts, newest first (the window is on started_at)."""
    endpoint = rules.get_endpoint(db.session(), tenant.id, endpoint_id)
    query = endpoint_attempts_query(endpoint.id, status=args.get("status"), window=window(args))
    return paginate(query, Attempt.id, args)
