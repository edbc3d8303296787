"""``webhooks deliveries redeliver`` and ``webhooks endpoints recover``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from tests.integration.history_fixtures import make_delivery, make_endpoint
from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef
from webhooks.core import clock
from webhooks.core.clock import rfc3339
from webhooks.core.db import new_session
from webhooks.models import Delivery, Tenant
from webhooks.ops.cli import main


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[DeliveryRef]:
    sent: list[DeliveryRef] = []
    monkeypatch.setattr(broker, "publish", lambda refs, **_: sent.extend(refs) or len(refs))
    return sent


def test_redeliver_and_recover(
    session: Session, tenant: Tenant, published: list[DeliveryRef]
) -> None:
    endpoint = make_endpoint(session, tenant, "https://receiver.example/hook")
    now = clock.now()
    one = make_delivery(session, endpoint, at=now - timedelta(hours=1), status="succeeded")
    failed = [
        make_delivery(session, endpoint, at=now - timedelta(hours=h), status="failed")
        for h in (2, 3)
    ]
    session.commit()
    runner = CliRunner()

    result = runner.invoke(main, ["deliveries", "redeliver", one.id])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": one.id, "status": "pending", "attempts": 1}
    assert [ref.id for ref in published] == [one.id]

    since = rfc3339(now - timedelta(days=1))
    result = runner.invoke(main, ["endpoints", "recover", endpoint.id, "--since", since])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deliveries": 2}
    with new_session() as check:
        assert {check.get_one(Delivery, d.id).status for d in failed} == {"pending"}

    missing = runner.invoke(main, ["deliveries", "redeliver", "dlv_01JD3Z0000000000000000000X"])
    assert missing.exit_code == 1 and "no delivery" in missing.stderr
    bad = runner.invoke(main, ["endpoints", "recover", endpoint.id, "--since", "yesterday"])
    assert bad.exit_code == 2 and "RFC 3339" in bad.stderr
