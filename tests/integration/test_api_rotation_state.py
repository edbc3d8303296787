"""An endpoint's JSON shows its rotation: when the previous secret stops signing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from api.endpoints import secrets
from tests.api_client import Caller
from webhooks.core import clock
from webhooks.core.clock import rfc3339
from webhooks.models import Tenant


def test_previous_secret_expires_at_follows_the_rotation(
    admin: Caller, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = admin.post(
        "/v1/tenants/acme/endpoints", json={"url": "http://127.0.0.1:9/", "verify": False}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    path = f"/v1/tenants/acme/endpoints/{created.get_json()['id']}"
    assert created.get_json()["previous_secret_expires_at"] is None

    at = clock.now().replace(microsecond=0)
    _frozen(monkeypatch, at)
    assert admin.post(f"{path}/rotate-secret").status_code == 200
    expires = rfc3339(at + timedelta(hours=24))
    assert admin.get(path).get_json()["previous_secret_expires_at"] == expires
    listed = admin.get("/v1/tenants/acme/endpoints").get_json()["data"]
    assert [endpoint["previous_secret_expires_at"] for endpoint in listed] == [expires]

    # A second rotation restarts the clock: only the newest two secrets ever sign.
    later: datetime = at + timedelta(hours=2)
    _frozen(monkeypatch, later)
    admin.post(f"{path}/rotate-secret")
    assert admin.get(path).get_json()["previous_secret_expires_at"] == rfc3339(
        later + timedelta(hours=24)
    )
    # Once it has expired the endpoint shows no rotation.
    _frozen(monkeypatch, later + timedelta(hours=24, seconds=1))
    assert admin.get(path).get_json()["previous_secret_expires_at"] is None


def _frozen(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    """The API's clock, where the endpoint JSON and the rotation read it, stopped at ``at``."""
    monkeypatch.setattr(clock, "now", lambda: at)
    monkeypatch.setattr(secrets, "now", lambda: at)
