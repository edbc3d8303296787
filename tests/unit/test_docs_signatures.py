"""The receiver-side ``v1a`` snippet in ``docs/signatures.md`` runs and verifies what we send."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from webhooks.outbound.signing import generate_private_key, public_key, signature_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "signatures.md"
BODY = b'{"id":"evt_1","type":"booking.created","data":{"n":1}}'


@pytest.fixture(scope="module")
def snippet() -> dict[str, Any]:
    section = DOC.read_text().split("## Verifying `v1a` in Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python block in the v1a section"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)  # noqa: S102 (our own doc)
    return namespace


def signed(keys: list[str], timestamp: int | None = None) -> dict[str, str]:
    at = int(time.time()) if timestamp is None else timestamp
    headers = signature_headers("evt_1", at, BODY, [], private_keys=keys)
    return {"Webhook-Id": headers["webhook-id"], "Webhook-Timestamp": headers["webhook-timestamp"],
            "Webhook-Signature": headers["webhook-signature"]}  # fmt: skip


def test_the_snippet_accepts_our_signatures_during_a_rotation(snippet: dict[str, Any]) -> None:
    new, old = generate_private_key(), generate_private_key()
    headers = signed([new, old])
    snippet["verify_webhook"](public_key(new), headers, BODY)
    snippet["verify_webhook"](public_key(old), headers, BODY)


@pytest.mark.parametrize("tamper", ["body", "id", "key", "old"])
def test_the_snippet_refuses_what_it_must(snippet: dict[str, Any], tamper: str) -> None:
    key = generate_private_key()
    headers = signed([key], timestamp=int(time.time()) - 3600 if tamper == "old" else None)
    body, verifying = BODY, public_key(key)
    if tamper == "body":
        body = BODY + b" "
    elif tamper == "id":
        headers["Webhook-Id"] = "evt_2"
    elif tamper == "key":
        verifying = public_key(generate_private_key())
    with pytest.raises(snippet["InvalidWebhook"]):
        snippet["verify_webhook"](verifying, headers, body)
