"""The one redaction rule: credential-like names, URL query values, free text, nested extras."""

from __future__ import annotations

import io
import logging

import pytest

from webhooks.core.config import load_settings
from webhooks.core.logs import configure_logging
from webhooks.core.redaction import (
    REDACTED,
    is_credential_name,
    mask_headers,
    mask_url,
    mask_value,
    redact_text,
)

TOKEN = "tok-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "Set-Cookie",
        "X-Auth-Token",
        "X-Api-Key",
        "api_key",
        "client_secret",
        "X-Password",
        "X-Payload-Signature",
        "webhook-signature",
    ],
)
def test_credential_like_names(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize(
    "name", ["Content-Type", "User-Agent", "X-Tenant", "webhook-id", "token_id", "key-id"]
)
def test_other_names_and_identifiers_of_credentials_are_not_masked(name: str) -> None:
    assert not is_credential_name(name)


def test_mask_headers_masks_by_rule_and_by_name_given() -> None:
    headers = {"Authorization": "Bearer x", "X-Custom-Sig": "abc", "X-Tenant": "acme"}
    assert mask_headers(headers, hidden=["x-custom-sig"]) == {
        "Authorization": REDACTED,
        "X-Custom-Sig": REDACTED,
        "X-Tenant": "acme",
    }


def test_mask_url_masks_every_query_value_and_keeps_the_rest() -> None:
    url = "https://hooks.example/services/T1/B2?sig=abc123&v=2#frag"
    assert mask_url(url) == f"https://hooks.example/services/T1/B2?sig={REDACTED}&v={REDACTED}#frag"
    assert mask_url("https://hooks.example/plain") == "https://hooks.example/plain"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {TOKEN}", TOKEN),
        (f"{{'X-Auth-Token': '{TOKEN}'}}", TOKEN),
        (f"x-api-key={TOKEN}", TOKEN),
        (f"POST https://hooks.example/in?sig={TOKEN} failed", TOKEN),
        ("signed v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=", "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("bad\nDETAIL:  Key (idempotency_key)=(card-4242) exists", "card-4242"),
        ('bad\nCONTEXT:  JSON data, line 1: {"card": "4242 4242"', "4242 4242"),
        ("[SQL: INSERT ...]\n[parameters: {'body': 'card 4242'}]", "card 4242"),
    ],
)
def test_redact_text_masks_credentials_and_echoed_data(text: str, secret: str) -> None:
    cleaned = redact_text(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_mask_value_walks_nested_structures() -> None:
    value = {"args": [f"Bearer {TOKEN}"], "kwargs": {"headers": {"X-Auth-Token": TOKEN}}}
    masked = mask_value(value)
    assert TOKEN not in repr(masked)
    assert masked["kwargs"]["headers"]["X-Auth-Token"] == REDACTED


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_both_log_formats_mask_exception_text_and_dict_extras(log_format: str) -> None:
    stream = io.StringIO()
    configure_logging(load_settings({"WEBHOOKS_LOG_FORMAT": log_format}), stream=stream)
    log = logging.getLogger("webhooks.test.redaction")
    try:
        raise RuntimeError(f"POST https://r.example/hook?sig={TOKEN}: X-Auth-Token: {TOKEN}")
    except RuntimeError:
        # Celery passes its task context as one dict extra, as here.
        log.exception("task failed", extra={"data": {"exc": f"Authorization: Bearer {TOKEN}"}})
    output = stream.getvalue()
    assert "task failed" in output and "RuntimeError" in output
    assert TOKEN not in output
