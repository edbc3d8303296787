"""Client certificates: checked on save, presented to a receiver that requires one, never
offered to another endpoint's receiver through a shared pool."""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from tests.tls_receivers import MutualTLSReceiver, client_certificate, write_ca
from tests.unit.test_transport import LOCAL, UA
from webhooks.core.errors import InvalidInput
from webhooks.outbound import client_tls
from webhooks.outbound.http import Transport

pytestmark = pytest.mark.timeout(30)

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def receiver(ca: trustme.CA) -> Iterator[MutualTLSReceiver]:
    with MutualTLSReceiver(ca) as server:
        yield server


@pytest.fixture
def transport(ca: trustme.CA, tmp_path: Path) -> Iterator[Transport]:
    made = Transport(LOCAL, user_agent=UA, verify=write_ca(ca, tmp_path))
    yield made
    made.close()


def test_a_valid_certificate_and_key_are_kept(ca: trustme.CA) -> None:
    given = client_certificate(ca, "acme")
    assert client_tls.validate(given, at=NOW) == given
    view = client_tls.public_view(given)
    assert view is not None and set(view) == {"cert", "expires_at"}
    assert view["expires_at"] > NOW


def test_a_key_of_another_certificate_is_refused(ca: trustme.CA) -> None:
    mixed = {**client_certificate(ca, "acme"), "key": client_certificate(ca, "other")["key"]}
    with pytest.raises(InvalidInput, match="not the key") as refused:
        client_tls.validate(mixed, at=NOW)
    assert refused.value.field == "client_certificate.key"


def test_an_expired_certificate_is_refused(ca: trustme.CA) -> None:
    expired = client_certificate(
        ca, "old", not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=1)
    )
    with pytest.raises(InvalidInput, match="expired") as refused:
        client_tls.validate(expired, at=NOW)
    assert refused.value.field == "client_certificate.cert"


BAD_KEY = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cert": "not a certificate"}, "client_certificate.cert"),
        ({"key": BAD_KEY}, "client_certificate.key"),
        ({"key": ""}, "client_certificate.key"),
        ({"password": "x"}, "client_certificate.password"),
    ],
)
def test_malformed_input_names_the_field(
    ca: trustme.CA, change: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        client_tls.validate({**client_certificate(ca, "acme"), **change}, at=NOW)
    assert refused.value.field == field


def test_the_receiver_accepts_the_certificate_and_refuses_none(
    ca: trustme.CA, receiver: MutualTLSReceiver, transport: Transport
) -> None:
    certificate = client_tls.of("ep_a", client_certificate(ca, "acme"))
    accepted = transport.post(receiver.url, {}, b"{}", 5, client_certificate=certificate)
    assert (accepted.status, accepted.error) == (200, None)
    refused = transport.post(receiver.url, {}, b"{}", 5)
    assert refused.status is None and refused.error in ("tls", "connection")
    assert receiver.clients == ["acme"]


def test_pools_are_never_shared_between_endpoints(
    ca: trustme.CA, receiver: MutualTLSReceiver, transport: Transport
) -> None:
    a = client_tls.of("ep_a", client_certificate(ca, "alpha"))
    b = client_tls.of("ep_b", client_certificate(ca, "beta"))
    # Interleaved on kept-alive connections to one host: each request presents its own.
    for certificate in (a, b, a, b, a):
        assert transport.post(receiver.url, {}, b"{}", 5, client_certificate=certificate).ok
    assert receiver.clients == ["alpha", "beta", "alpha", "beta", "alpha"]
    # And an endpoint without a certificate is not handed a pooled connection that has one.
    assert transport.post(receiver.url, {}, b"{}", 5).error in ("tls", "connection")
    assert len(receiver.clients) == 5


def test_a_replaced_certificate_is_presented_at_once(
    ca: trustme.CA, receiver: MutualTLSReceiver, transport: Transport
) -> None:
    for name in ("first", "second"):
        certificate = client_tls.of("ep_a", client_certificate(ca, name))
        assert transport.post(receiver.url, {}, b"{}", 5, client_certificate=certificate).ok
    assert receiver.clients == ["first", "second"]


def test_the_receiver_certificate_is_still_verified(
    ca: trustme.CA, receiver: MutualTLSReceiver
) -> None:
    certificate = client_tls.of("ep_a", client_certificate(ca, "acme"))
    untrusting = Transport(LOCAL, user_agent=UA)  # the default bundle: the test CA is unknown
    outcome = untrusting.post(receiver.url, {}, b"{}", 5, client_certificate=certificate)
    assert (outcome.status, outcome.error) == (None, "tls")
    assert receiver.clients == []


def test_the_key_file_is_gone_once_loaded(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    certificate = client_tls.of("ep_a", client_certificate(ca, "acme"))
    assert certificate is not None
    context = client_tls.ssl_context(certificate)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert list(tmp_path.iterdir()) == []
