"""The endpoint field rules and secret rotation, as plain functions."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from webhooks.admin import endpoints
from webhooks.core.errors import InvalidInput
from webhooks.models import Endpoint
from webhooks.outbound.outcome import Outcome
from webhooks.outbound.ping import describe
from webhooks.outbound.signing import hmac_secrets

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "content-length",
        "Content-Type",
        "Connection",
        "keep-alive",
        "Proxy-Authorization",
        "proxy-connection",
        "TE",
        "Trailer",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
        "webhook-id",
        "Webhook-Timestamp",
        "WEBHOOK-SIGNATURE",
        "webhook-anything",
    ],
)
def test_reserved_header_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="cannot be set") as error:
        endpoints.validate_header_name(name, "field")
    assert error.value.field == "field"


@pytest.mark.parametrize("name", ["", "X Y", "X:Y", "Ü", "X\r\nY", "a" * 101, "(x)"])
def test_invalid_header_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid header name"):
        endpoints.validate_header_name(name, "field")


@pytest.mark.parametrize(
    "name",
    ["X-FacesWebhookSignature", "X-api-key", "User-Agent", "Authorization", "x_y!#$%&'*+.^`|~"],
)
def test_valid_header_names(name: str) -> None:
    assert endpoints.validate_header_name(name, "field") == name


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "nul\x00", "del\x7f", "\u2603", "x" * 4097])
def test_header_values_without_line_breaks_or_controls(value: str) -> None:
    with pytest.raises(InvalidInput):
        endpoints.validate_header_value(value, "field")


def test_header_values_may_hold_tabs_spaces_and_latin1() -> None:
    assert endpoints.validate_header_value("Bearer a\tb caf\u00e9", "f") == "Bearer a\tb caf\u00e9"


def test_headers_are_counted_and_case_duplicates_refused() -> None:
    assert endpoints.validate_headers({f"X-{n}": "v" for n in range(50)})
    with pytest.raises(InvalidInput) as error:
        endpoints.validate_headers({f"X-{n}": "v" for n in range(51)})
    assert error.value.field == "headers"
    with pytest.raises(InvalidInput) as error:
        endpoints.validate_headers({"X-A": "1", "x-a": "2"})
    assert error.value.field == "headers.x-a"


def _whsec(size: int) -> str:
    return "whsec_" + base64.b64encode(bytes(size)).decode()


@pytest.mark.parametrize(
    "secret", ["S3cret!", "ünïcode", "x" * 128, _whsec(24), _whsec(64), "with spaces ok"]
)
def test_acceptable_secrets(secret: str) -> None:
    assert endpoints.validate_secret(secret) == secret


@pytest.mark.parametrize(
    "secret",
    [
        "short",
        "x" * 129,
        "line\nbreak",
        "nul\x00char",
        _whsec(23),
        _whsec(65),
        "whsec_***",
        "whsec_",
    ],
)
def test_unacceptable_secrets(secret: str) -> None:
    with pytest.raises(InvalidInput) as error:
        endpoints.validate_secret(secret)
    assert error.value.field == "secret"


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True),
        ("application/vnd.faces+json; charset=utf-8", True),
        ("text/plain;charset=UTF-8", True),
        ("json", False),
        ("text/plain\r\nX: 1", False),
        ("text/plain; charset=\u2603", False),
        ("text/" + "x" * 200, False),
    ],
)
def test_content_types(content_type: str, ok: bool) -> None:
    if ok:
        assert endpoints.validate_content_type(content_type) == content_type
    else:
        with pytest.raises(InvalidInput):
            endpoints.validate_content_type(content_type)


def test_retry_schedule_bounds() -> None:
    assert endpoints.validate_retry_schedule([]) == []
    assert endpoints.validate_retry_schedule([0, 60, 0]) == [0, 60, 0]
    assert endpoints.validate_retry_schedule([7 * 86400] * 50)
    for schedule, field in (([1] * 51, "retry_schedule"), ([0, -1], "retry_schedule.1")):
        with pytest.raises(InvalidInput) as error:
            endpoints.validate_retry_schedule(schedule)
        assert error.value.field == field
    with pytest.raises(InvalidInput):
        endpoints.validate_retry_schedule([7 * 86400 + 1])


@pytest.mark.parametrize(("seconds", "ok"), [(0, False), (1, True), (30, True), (31, False)])
def test_timeout_bounds(seconds: int, ok: bool) -> None:
    if ok:
        assert endpoints.validate_timeout(seconds) == seconds
    else:
        with pytest.raises(InvalidInput):
            endpoints.validate_timeout(seconds)


def test_rotation_keeps_the_old_secret_signing_for_a_day() -> None:
    endpoint = Endpoint(secret="old-secret")
    new = endpoints.rotate_secret(endpoint, at=AT)
    assert new.startswith("whsec_") and endpoint.secret == new
    assert hmac_secrets(endpoint, AT + timedelta(hours=23)) == [new, "old-secret"]
    assert hmac_secrets(endpoint, AT + timedelta(hours=24)) == [new]


def test_rotation_to_a_given_secret_is_checked() -> None:
    endpoint = Endpoint(secret="old-secret")
    assert endpoints.rotate_secret(endpoint, "chosen-secret", at=AT) == "chosen-secret"
    with pytest.raises(InvalidInput):
        endpoints.rotate_secret(endpoint, "chosen-secret", at=AT)
    with pytest.raises(InvalidInput):
        endpoints.rotate_secret(endpoint, "tiny", at=AT)
    assert endpoint.secret == "chosen-secret"


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        (Outcome(500, {}, b"", None, 5), "answered 500"),
        (Outcome(None, {}, b"", "timeout", 5), "failed: timeout"),
        (Outcome(302, {}, b"", "redirect", 5), "failed: redirect (status 302)"),
    ],
)
def test_describe_says_what_came_back(outcome: Outcome, text: str) -> None:
    assert describe(outcome) == text
