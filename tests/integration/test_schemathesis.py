"""No input makes the API answer 5xx: schemathesis against the app's own ``/openapi.json``.

Every operation gets bounded examples, valid and invalid. Each is sent twice: as generated
(the path names a tenant or object that mostly does not exist) and with the path pointed at
real objects, so that the bodies reach the validation and domain code behind the lookups.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import create_app
from webhooks.admin.endpoints import create_endpoint
from webhooks.admin.tenants import create_tenant
from webhooks.admin.tokens import create_token
from webhooks.core.db import new_session
from webhooks.ingest.enqueue import ingest
from webhooks.ingest.event_types import create_event_type
from webhooks.models import ApiToken, Delivery, Endpoint, Event, EventType, Tenant
from webhooks.outbound.http import default_transport

schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app({"TESTING": True}))


def _seed(session: Session) -> dict[str, str]:
    """Real objects for the path parameters, created unless an earlier example left them."""
    tenant = session.scalar(select(Tenant).where(Tenant.uid == "acme"))
    if tenant is None:
        tenant = create_tenant(session, "acme")
    refs = {"tenant": tenant.uid}
    endpoint = session.scalar(select(Endpoint).where(Endpoint.tenant_id == tenant.id))
    if endpoint is None:
        fields = {"url": "http://127.0.0.1:9/", "event_types": ["booking.*"]}
        transport = default_transport()
        endpoint = create_endpoint(session, tenant.id, fields, transport=transport, verify=False)
    refs["endpoint_id"] = endpoint.id
    name = session.scalar(select(EventType.name).where(EventType.tenant_id == tenant.id))
    refs["name"] = name or create_event_type(session, tenant.id, "booking.created").name
    event = session.scalar(select(Event).where(Event.tenant_id == tenant.id))
    if event is None:
        event = ingest(session, tenant=tenant, event_type="booking.created", data={}).event
    refs["event_id"] = event.id
    delivery = session.scalar(select(Delivery.id).where(Delivery.tenant_id == tenant.id))
    refs["delivery_id"] = delivery or "dlv_01JD3Z0000000000000000000X"
    token = session.scalar(select(ApiToken).where(ApiToken.tenant_id == tenant.id))
    refs["token_id"] = token.id if token else create_token(session, tenant=tenant)[0].id
    session.commit()
    return refs


@pytest.fixture
def admin_headers(clean_db: None) -> dict[str, str]:
    with new_session() as session:
        _, plaintext = create_token(session, tenant=None)
        session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(case: Case, admin_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=admin_headers, checks=[not_a_server_error])
    if case.path_parameters:
        with new_session() as session:
            refs = _seed(session)
        real: dict[str, Any] = {name: refs[name] for name in case.path_parameters}
        case.path_parameters = real
        case.call_and_validate(headers=admin_headers, checks=[not_a_server_error])
