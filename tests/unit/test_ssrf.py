"""Which endpoint URLs are refused, and why. No test touches the network."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import pytest

from webhooks.core.config import Settings
from webhooks.core.errors import InvalidInput, TargetRefused
from webhooks.outbound import ssrf
from webhooks.outbound.ssrf import TargetPolicy, check_target, check_url, refusal_reason, resolve

STRICT = TargetPolicy()
HTTP = TargetPolicy(allow_http=True)
LOOPBACK_ALLOWED = TargetPolicy(
    allow_http=True,
    allowed_networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
)

_real_getaddrinfo = socket.getaddrinfo

FakeAnswer = list[tuple[Any, ...]]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, list[str]], None]:
    """Make ``name`` resolve to ``addresses`` (other names: no answer, never the network)."""
    names: dict[str, list[str]] = {}

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> FakeAnswer:
        if host in names:
            answer: FakeAnswer = []
            for address in names[host]:
                if ":" in address:
                    answer.append(
                        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
                    )
                else:
                    answer.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
            return answer
        try:  # numeric spellings only: glibc normalises them without any lookup
            return _real_getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names.__setitem__


def refused(url: str, policy: TargetPolicy = STRICT) -> str:
    with pytest.raises(TargetRefused) as info:
        check_target(url, policy)
    assert info.value.field == "url"
    return str(info.value)


# --- syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "policy", "message"),
    [
        ("http://93.184.216.34/", STRICT, r"^URL must use https:// \(WEBHOOKS_ALLOW_HTTP=1 allows"),
        ("ftp://93.184.216.34/", STRICT, "URL must use https://"),
        ("ftp://93.184.216.34/", HTTP, "URL must use https:// or http://"),
        ("93.184.216.34/hook", STRICT, "URL must use https://"),
        ("https://user:pw@93.184.216.34/", STRICT, "URL must not contain credentials"),
        ("https://user@93.184.216.34/", STRICT, "URL must not contain credentials"),
        ("https://:pw@93.184.216.34/", STRICT, "URL must not contain credentials"),
        ("https:///path", STRICT, "URL must include a host"),
        ("https://93.184.216.34:0/", STRICT, "URL port must be a number"),
        ("https://93.184.216.34:65536/", STRICT, "URL port must be a number"),
        ("https://93.184.216.34:http/", STRICT, "URL port must be a number"),
        ("https://exa mple.com/", STRICT, "must not contain spaces"),
        ("https://example.com/\r\nX: y", STRICT, "must not contain spaces"),
        ("https://[::1/", STRICT, "URL is not valid"),
        ("https://a..b/", STRICT, "is not a valid host name"),
        ("https://example.com/" + "a" * 2048, STRICT, "at most 2048 characters"),
        ("", STRICT, "URL is required"),
    ],
)
def test_check_url_refuses(url: str, policy: TargetPolicy, message: str) -> None:
    with pytest.raises(TargetRefused, match=message) as info:
        check_url(url, policy)
    assert info.value.field == "url"
    assert isinstance(info.value, InvalidInput)


@pytest.mark.parametrize(
    ("url", "policy"),
    [
        ("https://example.com/hook", STRICT),
        ("HTTPS://Example.COM:8443/hook?x=1#frag", STRICT),
        ("http://example.com/", HTTP),
        ("https://[2606:4700::1]:443/", STRICT),
        ("https://example.com:/", STRICT),
    ],
)
def test_check_url_accepts(url: str, policy: TargetPolicy) -> None:
    assert check_url(url, policy).hostname


def test_http_is_refused_or_allowed_by_flag() -> None:
    assert "https://" in refused("http://93.184.216.34/")
    assert check_target("http://93.184.216.34/", HTTP) == [ipaddress.ip_address("93.184.216.34")]


# --- addresses: literals in URLs -------------------------------------------------------

REFUSED_LITERALS = [
    # IPv4
    ("10.0.0.1", "a private address"),
    ("172.16.5.4", "a private address"),
    ("192.168.1.1", "a private address"),
    ("127.0.0.1", "a loopback address"),
    ("127.255.0.9", "a loopback address"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.1.1", "a link-local address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("0.0.0.0", "the unspecified address"),  # noqa: S104
    ("0.1.2.3", "'this network'"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("198.18.0.1", "a benchmarking address"),
    ("192.0.2.1", "a documentation address"),
    ("198.51.100.7", "a documentation address"),
    ("203.0.113.9", "a documentation address"),
    ("255.255.255.255", "the broadcast address"),
    ("192.0.0.8", "IETF protocol assignment"),
    # IPv6
    ("[::1]", "a loopback address"),
    ("[::]", "the unspecified address"),
    ("[fe80::1]", "a link-local address"),
    ("[fec0::1]", "a site-local address"),
    ("[fc00::1]", "unique-local"),
    ("[fd12:3456::1]", "unique-local"),
    ("[ff02::1]", "a multicast address"),
    ("[2001:db8::1]", "a documentation address"),
    ("[2001:2::1]", "a benchmarking address"),
    ("[100::1]", "discard-only"),
    # IPv6 forms embedding an IPv4 address: the refusal names classes, never the address
    ("[::ffff:127.0.0.1]", "IPv4-mapped address embedding a loopback address"),
    ("[::ffff:7f00:1]", "IPv4-mapped address embedding a loopback address"),
    ("[::ffff:10.1.2.3]", "IPv4-mapped address embedding a private address"),
    ("[::ffff:169.254.169.254]", "cloud metadata"),
    ("[::ffff:0:127.0.0.1]", "IPv4-translated address embedding a loopback address"),
    ("[::127.0.0.1]", "an IPv4-compatible address"),
    ("[::10.0.0.1]", "an IPv4-compatible address"),
    ("[64:ff9b::127.0.0.1]", "NAT64 address embedding a loopback address"),
    ("[64:ff9b::a9fe:a9fe]", "NAT64 address embedding a link-local address (the cloud metadata"),
    ("[64:ff9b:1::a00:1]", "a local-use NAT64 address"),
    ("[2002:7f00:1::1]", "6to4 address embedding a loopback address"),
    ("[2002:a9fe:a9fe::1]", "6to4 address embedding a link-local address"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted: 80ff:fffe)
    ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "a Teredo address"),
]


@pytest.mark.parametrize(("host", "reason"), REFUSED_LITERALS)
def test_literal_addresses_are_refused(host: str, reason: str) -> None:
    message = refused(f"https://{host}:8443/hook")
    assert reason in message
    assert message.startswith("URL host ")


@pytest.mark.parametrize(
    "host",
    [
        "93.184.216.34",
        "8.8.8.8",
        "[2606:4700::1]",
        "[2a00:1450:4001:82b::200e]",
        "[::ffff:93.184.216.34]",  # mapped public: judged by the IPv4 address
        "[64:ff9b::5db8:d822]",  # NAT64 of 93.184.216.34
        "[2002:5db8:d822::1]",  # 6to4 of 93.184.216.34
    ],
)
def test_public_literals_are_allowed_without_network(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(*args: Any, **kwargs: Any) -> FakeAnswer:
        raise AssertionError("a literal address must not be looked up")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    addresses = check_target(f"https://{host}/hook", STRICT)
    assert len(addresses) == 1


def test_a_percent_in_an_ipv4_host_is_not_a_zone_id(
    fake_dns: Callable[[str, list[str]], None],
) -> None:
    assert "does not resolve" in refused("https://93.184.216.34%2510/")


def test_zone_ids_are_stripped_and_judged(fake_dns: Callable[[str, list[str]], None]) -> None:
    assert "a link-local address" in refused("https://[fe80::1%25eth0]/")
    assert ssrf.lookup("fe80::1%eth0", 443) == [ipaddress.ip_address("fe80::1")]


# --- addresses: names and odd spellings ------------------------------------------------


@pytest.mark.parametrize(
    "host", ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "017700000001"]
)
def test_numeric_spellings_are_resolved_then_refused(
    host: str, fake_dns: Callable[[str, list[str]], None]
) -> None:
    message = refused(f"https://{host}/")
    assert f"URL host {host} resolves to a loopback address" in message


def test_localhost_is_refused(fake_dns: Callable[[str, list[str]], None]) -> None:
    fake_dns("localhost", ["127.0.0.1", "::1"])
    assert "resolves to a loopback address" in refused("https://localhost/")


def test_a_name_resolving_to_loopback_is_refused(
    fake_dns: Callable[[str, list[str]], None],
) -> None:
    fake_dns("evil.example", ["127.0.0.1"])
    message = refused("https://evil.example/hook")
    assert message == (
        "URL host evil.example resolves to a loopback address "
        "(its network in WEBHOOKS_ALLOWED_PRIVATE_NETWORKS would allow it)"
    )
    assert "127.0.0.1" not in message  # internal DNS is not mapped through refusals


def test_one_private_address_among_public_ones_refuses(
    fake_dns: Callable[[str, list[str]], None],
) -> None:
    fake_dns("mixed.example", ["93.184.216.34", "10.0.0.7"])
    assert refused("https://mixed.example/") == (
        "URL host mixed.example resolves to a private address "
        "(its network in WEBHOOKS_ALLOWED_PRIVATE_NETWORKS would allow it)"
    )


def test_aaaa_answers_embedding_private_ipv4_are_refused(
    fake_dns: Callable[[str, list[str]], None],
) -> None:
    fake_dns("six.example", ["2606:4700::1", "::ffff:192.168.0.1"])
    assert "embedding a private address" in refused("https://six.example/")


def test_public_names_resolve_deduplicated_in_order(
    fake_dns: Callable[[str, list[str]], None],
) -> None:
    fake_dns("good.example", ["93.184.216.34", "2606:4700::1", "93.184.216.34"])
    assert check_target("https://good.example/", STRICT) == [
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("2606:4700::1"),
    ]


def test_unresolvable_host_is_refused(fake_dns: Callable[[str, list[str]], None]) -> None:
    assert refused("https://nowhere.invalid/") == "URL host nowhere.invalid does not resolve"
    with pytest.raises(OSError):
        ssrf.lookup("nowhere.invalid", 443)


def test_resolve_checks_the_port_it_is_given(fake_dns: Callable[[str, list[str]], None]) -> None:
    fake_dns("good.example", ["93.184.216.34"])
    assert resolve("good.example", 8443, STRICT) == [ipaddress.ip_address("93.184.216.34")]


# --- the allowlist ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://[::1]:8000/hook",
        "http://[::ffff:127.0.0.1]:8000/hook",
        "http://localhost:8000/hook",
        "http://2130706433:8000/hook",
    ],
)
def test_allowlist_lets_loopback_through(
    url: str, fake_dns: Callable[[str, list[str]], None]
) -> None:
    fake_dns("localhost", ["127.0.0.1", "::1"])
    assert check_target(url, LOOPBACK_ALLOWED)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "169.254.169.254", "[::ffff:10.0.0.1]", "[fe80::1]", "192.168.0.1"]
)
def test_allowlist_does_not_let_other_private_addresses_through(host: str) -> None:
    refused(f"http://{host}/", LOOPBACK_ALLOWED)


@pytest.mark.parametrize(
    "host",
    [
        "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1: the translator, not this machine, connects
        "[2002:7f00:1::1]",  # 6to4 of 127.0.0.1
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo with client 127.0.0.1
        "[::ffff:0:127.0.0.1]",  # IPv4-translated
        "[::127.0.0.1]",  # IPv4-compatible
    ],
)
def test_allowlist_of_an_ipv4_network_does_not_allow_ipv6_forms_leaving_the_machine(
    host: str,
) -> None:
    message = refused(f"http://{host}/", LOOPBACK_ALLOWED)
    assert "127.0.0.1" not in message.partition(" is ")[2]  # the reason names no address


def test_an_allowlisted_ipv6_translation_network_is_allowed_as_itself() -> None:
    policy = TargetPolicy(allow_http=True, allowed_networks=(ipaddress.ip_network("64:ff9b::/96"),))
    assert check_target("http://[64:ff9b::7f00:1]/", policy)


def test_refusal_reason_is_none_when_allowed() -> None:
    assert refusal_reason(ipaddress.ip_address("127.0.0.1"), LOOPBACK_ALLOWED) is None
    assert refusal_reason(ipaddress.ip_address("93.184.216.34"), STRICT) is None
    assert refusal_reason(ipaddress.ip_address("127.0.0.1"), STRICT) == "a loopback address"


def test_policy_from_settings() -> None:
    settings = Settings(
        database_url="sqlite://",
        broker_url="memory://",
        secret_keys=(),
        allow_http=True,
        allowed_private_networks=(ipaddress.ip_network("10.1.0.0/16"),),
    )
    policy = TargetPolicy.from_settings(settings)
    assert policy == TargetPolicy(True, (ipaddress.ip_network("10.1.0.0/16"),))
    assert check_target("http://10.1.2.3/", policy)
    refused("http://10.2.0.1/", policy)


def test_a_refusal_that_a_setting_decides_names_the_setting() -> None:
    assert refused("https://[::1]/hook") == (
        "URL host ::1 is a loopback address "
        "(WEBHOOKS_ALLOWED_PRIVATE_NETWORKS=::1/128 would allow it)"
    )
    with pytest.raises(TargetRefused) as info:
        check_url("http://93.184.216.34/", STRICT)
    assert "WEBHOOKS_ALLOW_HTTP=1" in str(info.value)
    # Never suggested for the cloud metadata service, in any spelling.
    for host in ("169.254.169.254", "[::ffff:169.254.169.254]"):
        assert "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS" not in refused(f"https://{host}/")
