"""docs/integrate.md, followed step by step: every code block of the guide runs, in order,
against a real stack: the API on a real HTTP port, a real Celery worker, and the guide's own
receiver on 127.0.0.1. Only the guide's local addresses (the API on port 8000, the receiver
on port 5000) are swapped for the ports this run got."""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, request

from api import create_app
from tests.processes import Worker
from tests.recipes.recipe import fenced_blocks, serving
from tests.services import wait_until
from webhooks import enqueue_event
from webhooks.admin.tokens import create_token
from webhooks.core.db import session_scope

pytestmark = pytest.mark.e2e

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "integrate.md"

API_IN_GUIDE = "http://127.0.0.1:8000"
RECEIVER_IN_GUIDE = "127.0.0.1:5000"


def guide_blocks() -> dict[str, tuple[str, str]]:
    """Every fenced block of the guide, by tag: ``{tag: (language, text)}``; each block must
    carry a language and a tag, so that none escapes the test."""
    blocks: dict[str, tuple[str, str]] = {}
    for info, text in fenced_blocks(GUIDE):
        language, _, tag = info.partition(" ")
        assert tag, f"a block of {GUIDE.name} has no tag: {info!r}\n{text}"
        assert tag not in blocks, f"two blocks tagged {tag!r}"
        blocks[tag] = (language, text)
    return blocks


class Guide:
    """Runs the guide's blocks, keeping track of which ran."""

    def __init__(self, env: dict[str, str], api: str) -> None:
        self.blocks = guide_blocks()
        self.env = env
        self.api = api
        self.receiver = ""
        self.ran: list[str] = []

    def _text(self, tag: str, language: str) -> str:
        found, text = self.blocks[tag]
        assert found == language, f"block {tag!r} is {found}, not {language}"
        self.ran.append(tag)
        return text.replace(API_IN_GUIDE, self.api).replace(RECEIVER_IN_GUIDE, self.receiver)

    def sh(self, tag: str, then: str = "") -> str:
        script = self._text(tag, "sh") + "\n" + then
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"block {tag!r} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def python(
        self, tag: str, namespace: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str]:
        namespace = {"__name__": f"guide_{tag}"} if namespace is None else namespace
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(self._text(tag, "python"), f"{GUIDE.name}:{tag}", "exec"), namespace)  # noqa: S102
        return namespace, out.getvalue()


class GuideReceiver:
    """The guide's receiver block, served for real, with what it handled recorded."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.handled: list[dict[str, Any]] = []
        self.calls = 0
        original = namespace["handle"]

        def handle(event: dict[str, Any]) -> None:
            original(event)
            self.handled.append(event)

        namespace["handle"] = handle  # the view looks it up in the module's globals per call
        app: Flask = namespace["app"]

        @app.before_request
        def count() -> None:
            if request.path == "/webhooks":
                self.calls += 1

    def handled_ids(self) -> list[str]:
        return [event["id"] for event in self.handled]

    def wait_for(self, event_id: str) -> None:
        wait_until(lambda: event_id in self.handled_ids(), 30, f"the receiver to handle {event_id}")


def test_the_integration_guide_step_by_step(
    worker: Worker, clean_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as session:
        _, admin = create_token(session, tenant=None)
    var = tmp_path / "var"
    var.mkdir()
    (var / "admin-token").write_text(admin + "\n")
    env = {
        **os.environ,
        "WEBHOOKS_VAR_DIR": str(var),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with serving(create_app()) as api:
        guide = Guide(env, api)

        # 1. The shell variables, kept for the later blocks.
        values = guide.sh("vars", 'printf "%s\\n" "$API" "$ADMIN" "$WEBHOOK_SECRET"').split("\n")
        assert values[:3] == [api, admin, values[2]] and values[2].startswith("whsec_")
        env.update(API=api, ADMIN=admin, WEBHOOK_SECRET=values[2])
        monkeypatch.setenv("WEBHOOK_SECRET", values[2])

        # 2. The receiver, served for real.
        namespace, _ = guide.python("receiver")
        receiver = GuideReceiver(namespace)
        with serving(namespace["app"]) as receiver_url:
            guide.receiver = receiver_url.removeprefix("http://")
            _follow(guide, receiver, api, admin)

    assert sorted(guide.ran) == sorted(guide.blocks), "every block of the guide runs"


def _follow(guide: Guide, receiver: GuideReceiver, api: str, admin: str) -> None:
    # 3. The endpoint: created only because the receiver verified the PING.
    created = guide.sh("endpoint")
    assert '"uid":"acme"' in created and f'"url":"http://{guide.receiver}/webhooks"' in created
    assert [event["type"] for event in receiver.handled] == ["ping"]

    # 4. The signature shown is the function's.
    stub, _ = guide.python("signature", {"__name__": "guide_signature", "Any": Any,
                                         "datetime": datetime, "Session": object})  # fmt: skip
    documented = inspect.signature(stub["enqueue_event"], eval_str=False)
    actual = inspect.signature(enqueue_event)
    assert list(documented.parameters) == list(actual.parameters)
    for name, parameter in actual.parameters.items():
        shown = documented.parameters[name]
        assert (shown.kind, shown.default) == (parameter.kind, parameter.default), name

    # Producing, with an idempotency key (the block asserts the repeat itself).
    _, printed = guide.python("producer")
    event_id = printed.strip()
    assert event_id.startswith("evt_")
    receiver.wait_for(event_id)

    # A redelivery comes with the same webhook-id: the receiver answers it, handles it once.
    headers = {"Authorization": f"Bearer {admin}"}
    event = requests.get(f"{api}/v1/tenants/acme/events/{event_id}", headers=headers, timeout=10)
    [delivery] = event.json()["deliveries"]
    calls = receiver.calls
    redelivered = requests.post(
        f"{api}/v1/tenants/acme/deliveries/{delivery['id']}/redeliver", headers=headers, timeout=10
    )
    assert redelivered.status_code == 202
    wait_until(lambda: receiver.calls > calls, 30, "the redelivery")
    delivery_url = f"{api}/v1/tenants/acme/deliveries/{delivery['id']}"
    wait_until(
        lambda: (
            requests.get(delivery_url, headers=headers, timeout=10).json()["status"] == "succeeded"
        ),
        30,
        "the redelivery to succeed",
    )
    assert receiver.handled_ids().count(event_id) == 1

    _, printed = guide.python("errors")
    assert printed == "not sent (NotFound): no tenant 'no-such-tenant'\n"

    guide.python("outbox")
    wait_until(
        lambda: "order.paid" in [event["type"] for event in receiver.handled], 30, "order.paid"
    )

    assert guide.sh("send") == "202\n200\n"
    wait_until(
        lambda: {"order_id": "1003"} in [event["data"] for event in receiver.handled], 30, "1003"
    )

    # 5. Rotation: the expiry is shown, and the receiver, still on the old secret, accepts
    # what is now signed with both.
    expires = datetime.fromisoformat(guide.sh("rotate").strip())
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    during = enqueue_event("order.created", {"order_id": "1004"}, tenant="acme")
    receiver.wait_for(during)

    # 6. The history from the command line.
    history = guide.sh("history")
    assert event_id in history and during in history
    assert history.count(" succeeded ") >= 4
