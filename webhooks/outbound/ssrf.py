"""Which endpoint URLs the dispatcher may call.

Endpoint URLs are chosen by tenants, and the dispatcher calls them from inside the operator's
network, so a URL is a request to reach *anything* the worker can reach: the cloud metadata
service, the database, an admin port on localhost. This module decides what is allowed. The
API checks a URL when an endpoint is created or changed, so that a tenant hears about a bad
URL at once; the worker checks again at every send (see :mod:`webhooks.outbound.http`), because
DNS answers change and only the addresses actually connected to matter.

The rule: ``https://`` (``http://`` only when ``WEBHOOKS_ALLOW_HTTP`` says so), no
credentials in the URL, and every address the host resolves to must be globally routable,
unless it lies in a network the operator listed in ``WEBHOOKS_ALLOWED_PRIVATE_NETWORKS``.

IPv6 forms that carry an IPv4 address are judged by what a connection to them does. An
IPv4-mapped address (``::ffff:127.0.0.1``) *is* the IPv4 address: the socket connects to it
over IPv4, so it is judged as that address, allowlist included. NAT64, 6to4 and translated
addresses leave the machine towards a translator or relay: they are judged as themselves,
and in addition their embedded IPv4 address must be globally routable (the allowlist, which
names networks reachable from here, never applies to it). Teredo, local-use NAT64 and the
deprecated IPv4-compatible forms are refused unless their own network is allowlisted.

A refusal names the class of address ("a loopback address"), never the address a name
resolved to: a tenant must not be able to map the operator's internal DNS with it.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from webhooks.core.errors import TargetRefused

if TYPE_CHECKING:
    from webhooks.core.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Longest URL accepted; long enough for any sane receiver, short enough to store and log.
MAX_URL_LENGTH = 2048

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

#: The cloud metadata service (AWS, GCP, Azure, ...): the classic SSRF prize.
_METADATA = ipaddress.IPv4Address("169.254.169.254")

#: IPv4 classes that are not globally routable, first match wins. ``ipaddress`` alone is not
#: enough: its ``is_global`` is True for multicast and some special-purpose blocks, and its
#: idea of "private" varies between Python releases. Naming the class also lets the refusal
#: say *why*.
_V4_CLASSES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "the unspecified address"),
    (_V4("0.0.0.0/8"), "a 'this network' address"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("169.254.0.0/16"), "a link-local address"),
    (_V4("10.0.0.0/8"), "a private address"),
    (_V4("172.16.0.0/12"), "a private address"),
    (_V4("192.168.0.0/16"), "a private address"),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT (shared) address"),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("192.0.2.0/24"), "a documentation address"),
    (_V4("198.51.100.0/24"), "a documentation address"),
    (_V4("203.0.113.0/24"), "a documentation address"),
    (_V4("192.0.0.0/24"), "an IETF protocol assignment address"),
    (_V4("192.88.99.0/24"), "a 6to4 relay anycast address"),
    (_V4("255.255.255.255/32"), "the broadcast address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
)

#: The same for IPv6, once the forms embedding IPv4 have been unwrapped.
_V6_CLASSES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "the unspecified address"),
    (_V6("::1/128"), "a loopback address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local address"),
    (_V6("fc00::/7"), "a unique-local (private) address"),
    (_V6("ff00::/8"), "a multicast address"),
    (_V6("2001:db8::/32"), "a documentation address"),
    (_V6("3fff::/20"), "a documentation address"),
    (_V6("2001:2::/48"), "a benchmarking address"),
    (_V6("100::/64"), "a discard-only address"),
    (_V6("::ffff:0:0/96"), "an IPv4-mapped address"),  # judged by its IPv4 address first
    (_V6("::/96"), "an IPv4-compatible address (deprecated, never routed)"),
    (_V6("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_V6("2001::/32"), "a Teredo address"),
)

_MAPPED = _V6("::ffff:0:0/96")
_TRANSLATED = _V6("::ffff:0:0:0/96")
_NAT64 = _V6("64:ff9b::/96")


@dataclass(frozen=True)
class TargetPolicy:
    """What endpoint URLs may point at; built once from the settings and shared."""

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetPolicy:
        """The policy that ``WEBHOOKS_ALLOW_HTTP`` and ``..._ALLOWED_PRIVATE_NETWORKS`` set."""
        return cls(
            allow_http=settings.allow_http,
            allowed_networks=tuple(settings.allowed_private_networks),
        )

    def is_allowed_network(self, ip: IPAddress) -> bool:
        """Whether the operator explicitly allowed ``ip`` although it may not be public."""
        return any(ip in network for network in self.allowed_networks)


def _refuse(reason: str) -> TargetRefused:
    return TargetRefused(reason, field="url")


def check_url(url: str, policy: TargetPolicy) -> urllib.parse.SplitResult:
    """Check the URL's syntax: scheme, host, port, no credentials. Does not resolve the host.

    Credentials are refused because they would be sent to the receiver in every request and
    shown wherever the URL is shown (history, logs), and because ``user@host`` spellings are
    a favourite way of making a URL look like it points somewhere else.
    """
    if not isinstance(url, str) or not url:
        raise _refuse("URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"URL must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise _refuse("URL must not contain spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise _refuse(f"URL is not valid: {exc}") from None
    _check_scheme(parts.scheme.lower(), policy)
    if "@" in parts.netloc:
        raise _refuse("URL must not contain credentials")
    _check_host(parts.hostname)
    _check_port(parts)
    return parts


def _check_scheme(scheme: str, policy: TargetPolicy) -> None:
    if scheme == "https" or (scheme == "http" and policy.allow_http):
        return
    if policy.allow_http:
        raise _refuse("URL must use https:// or http://")
    if scheme == "http":
        raise _refuse(f"URL must use https:// ({ALLOW_HTTP_HINT})")
    raise _refuse("URL must use https://")


def _check_host(hostname: str | None) -> None:
    if not hostname:
        raise _refuse("URL must include a host")
    if _literal_ip(hostname) is not None:
        return
    try:
        hostname.encode("idna")
    except UnicodeError:
        raise _refuse(f"URL host {hostname!r} is not a valid host name") from None


def _check_port(parts: urllib.parse.SplitResult) -> None:
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _refuse("URL port must be a number from 1 to 65535")


def default_port(parts: urllib.parse.SplitResult) -> int:
    """The port the URL names, or its scheme's default."""
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


def refusal_reason(ip: IPAddress, policy: TargetPolicy) -> str | None:
    """Why ``ip`` may not be called, as a phrase ("a private address"); None if it may.

    The allowlist wins for the address itself, so that tests and on-premises receivers
    work; ``::ffff:127.0.0.1`` is exactly as allowed as ``127.0.0.1``. The phrase never
    names an address.
    """
    if policy.is_allowed_network(ip):
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_reason(ip)
    return _v6_reason(ip, policy)


def _v4_reason(ip: ipaddress.IPv4Address) -> str | None:
    if ip == _METADATA:
        return "a link-local address (the cloud metadata service)"
    for network, reason in _V4_CLASSES:
        if ip in network:
            return reason
    if not ip.is_global:
        return _NOT_GLOBAL
    return None


_NOT_GLOBAL = "an address that is not globally routable"


def _v6_reason(ip: ipaddress.IPv6Address, policy: TargetPolicy) -> str | None:
    if ip in _MAPPED:
        inner = refusal_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), policy)
        return None if inner is None else f"an IPv4-mapped address embedding {inner}"
    own = _class_of_v6(ip)
    if own is not None:
        return own
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        form, v4 = embedded
        inner = _v4_reason(v4)  # never the allowlist: these packets leave the machine
        if inner is not None:
            return f"{form} embedding {inner}"
    return None


def _class_of_v6(ip: ipaddress.IPv6Address) -> str | None:
    for network, reason in _V6_CLASSES:
        if ip in network:
            return reason
    if not ip.is_global:
        return _NOT_GLOBAL
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The (form, IPv4 address) of a routable form carrying one, where a translator or
    relay sends the packets on; None for other addresses."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _TRANSLATED:
        return "an IPv4-translated address", low32
    if ip in _NAT64:
        return "a NAT64 address", low32
    if ip.sixtofour is not None:
        return "a 6to4 address", ip.sixtofour
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """``host`` as an address if it is one in canonical notation (brackets, zone id allowed).

    Only the strict notations count; ``2130706433`` or ``0177.0.0.1`` are left to the
    resolver, which is what turns them into addresses when connecting.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in text:  # only IPv6 has zone ids ("%25eth0" in a URL)
        text = urllib.parse.unquote(text).split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def lookup(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` the way connecting would, without zone ids and duplicates, in order.

    Raises :class:`OSError` (``socket.gaierror``) when the name does not resolve, so that
    callers can tell "cannot check" from "refused".
    """
    literal = _literal_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:  # an over-long or empty label, from the IDNA codec
        raise socket.gaierror(socket.EAI_NONAME, str(exc)) from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def check_addresses(host: str, addresses: list[IPAddress], policy: TargetPolicy) -> None:
    """Raise :class:`TargetRefused` if any of ``host``'s addresses is refused.

    One bad address refuses the host, although another one might be fine: a name that
    resolves to both a public and a private address is either misconfigured or an attack.
    """
    for ip in addresses:
        reason = refusal_reason(ip, policy)
        if reason is None:
            continue
        literal = _literal_ip(host) == ip
        hint = "" if "metadata service" in reason else f" ({allow_network_hint(ip, literal)})"
        if literal:
            raise _refuse(f"URL host {host} is {reason}{hint}")
        # The class, not the address: the address would map the operator's DNS for anyone.
        raise _refuse(f"URL host {host} resolves to {reason}{hint}")


#: What the refusal of a plain ``http://`` URL adds: the setting that decides it.
ALLOW_HTTP_HINT = "WEBHOOKS_ALLOW_HTTP=1 allows http://"


def allow_network_hint(ip: IPAddress, literal: bool) -> str:
    """The setting that would allow ``ip``: refusing it is the operator's choice, so say so.

    Not offered for the cloud metadata service, which no receiver should ever be. The
    network is named only for an address the caller wrote in the URL itself.
    """
    if literal:
        return f"WEBHOOKS_ALLOWED_PRIVATE_NETWORKS={ipaddress.ip_network(ip)} would allow it"
    return "its network in WEBHOOKS_ALLOWED_PRIVATE_NETWORKS would allow it"


def resolve(host: str, port: int, policy: TargetPolicy) -> list[IPAddress]:
    """Resolve ``host`` and check every address; raise :class:`TargetRefused` if refused."""
    try:
        addresses = lookup(host, port)
    except OSError:
        raise _refuse(f"URL host {host} does not resolve") from None
    if not addresses:
        raise _refuse(f"URL host {host} does not resolve")
    check_addresses(host, addresses, policy)
    return addresses


def check_target(url: str, policy: TargetPolicy) -> list[IPAddress]:
    """Check an endpoint URL completely (syntax and addresses), as the API does on save."""
    parts = check_url(url, policy)
    assert parts.hostname is not None  # check_url refuses URLs without a host
    return resolve(parts.hostname, default_port(parts), policy)
