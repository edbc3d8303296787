"""The data model round-trips on real Postgres: JSONB, encryption at rest, constraints."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webhooks.admin.tenants import create_tenant
from webhooks.models import Delivery, Endpoint, Event
from webhooks.outbound.signing import hmac_secrets


def _endpoint(session: Session, tenant_id: str, **fields: object) -> Endpoint:
    endpoint = Endpoint(tenant_id=tenant_id, url="https://example.com/hook", secret="whsec_abc")
    for name, value in fields.items():
        setattr(endpoint, name, value)
    session.add(endpoint)
    session.commit()
    return endpoint


def test_event_round_trips_json_and_aware_times(session: Session) -> None:
    tenant = create_tenant(session, "acme", "Acme")
    stamp = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    data = {"uuid": "25b4", "nested": {"list": [1, 2.5, None, "é"]}}
    event = Event(tenant_id=tenant.id, type="traveller.updated", data=data, timestamp=stamp)
    session.add(event)
    session.commit()
    session.expunge_all()

    loaded = session.get(Event, event.id)
    assert loaded is not None
    assert loaded.data == data
    assert loaded.timestamp == stamp and loaded.timestamp.tzinfo is not None
    column_type = session.execute(
        text("SELECT pg_typeof(data)::text FROM events WHERE id = :id"), {"id": event.id}
    ).scalar_one()
    assert column_type == "jsonb"


def test_idempotency_key_is_unique_per_tenant(session: Session) -> None:
    acme = create_tenant(session, "acme")
    other = create_tenant(session, "other")
    now = datetime.now(UTC)
    for tenant in (acme, other):
        session.add(
            Event(tenant_id=tenant.id, type="a", data={}, timestamp=now, idempotency_key="k1")
        )
    session.add(Event(tenant_id=acme.id, type="a", data={}, timestamp=now))
    session.add(Event(tenant_id=acme.id, type="a", data={}, timestamp=now))
    session.commit()

    session.add(Event(tenant_id=acme.id, type="b", data={}, timestamp=now, idempotency_key="k1"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_secrets_and_api_keys_are_encrypted_at_rest(session: Session) -> None:
    tenant = create_tenant(session, "acme")
    endpoint = _endpoint(session, tenant.id, secret="whsec_plain-secret", api_key="key-123")
    raw = session.execute(
        text("SELECT secret, api_key FROM endpoints WHERE id = :id"), {"id": endpoint.id}
    ).one()
    assert "plain-secret" not in raw.secret and "key-123" not in raw.api_key
    session.expunge_all()
    loaded = session.get(Endpoint, endpoint.id)
    assert loaded is not None
    assert (loaded.secret, loaded.api_key) == ("whsec_plain-secret", "key-123")


def test_signing_secrets_include_the_previous_one_until_it_expires(session: Session) -> None:
    tenant = create_tenant(session, "acme")
    now = datetime.now(UTC)
    endpoint = _endpoint(
        session,
        tenant.id,
        secret="new",
        previous_secret="old",
        previous_secret_expires_at=now + timedelta(hours=24),
    )
    assert hmac_secrets(endpoint, now) == ["new", "old"]
    assert hmac_secrets(endpoint, now + timedelta(hours=25)) == ["new"]


def test_deleting_a_tenant_cascades(session: Session) -> None:
    tenant = create_tenant(session, "acme")
    endpoint = _endpoint(session, tenant.id)
    event = Event(tenant_id=tenant.id, type="a", data={}, timestamp=datetime.now(UTC))
    session.add(event)
    session.flush()
    session.add(Delivery(tenant_id=tenant.id, event_id=event.id, endpoint_id=endpoint.id))
    session.commit()
    session.delete(tenant)
    session.commit()
    assert session.execute(text("SELECT count(*) FROM deliveries")).scalar_one() == 0
