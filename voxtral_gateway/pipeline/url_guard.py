"""SSRF guard: decide whether a `file_url` may be fetched, and pin it to the address checked.

One parser (`httpx.URL`) is used both here and for the connection, so the host we check is the
host we connect to (vLLM's CVE-2026-24779/25960 came from two parsers disagreeing). Names are
resolved exactly once; every address they resolve to must be public (or inside
`allowed_networks`), and the caller connects only to those checked addresses, never re-resolving,
so DNS rebinding between check and connect has nothing to exploit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from voxtral_gateway.errors import FetchError, UrlRejectedError
from voxtral_gateway.settings import FetchSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS name as it goes on the wire: ASCII labels (IDNA already applied by httpx.URL).
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_-]{1,63})*$"
)
# inet_aton() accepts 2130706433, 0x7f000001, 0177.0.0.1 and 127.1 as 127.0.0.1; a resolver
# would too. Only the canonical dotted quad is an address; anything else this shape is refused.
_NUMERIC_LOOKING = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*$")
_NAT64_PREFIXES = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class Resolver(Protocol):
    """Turns a host name into the addresses it points at; injectable so tests control DNS."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo), run off the event loop."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        # AI_ADDRCONFIG: no IPv6 answers on a host without IPv6, where they could only fail.
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
        )
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            # Scope ids ("fe80::1%eth0") are dropped; link-local is refused anyway.
            address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if address not in addresses:
                addresses.append(address)
        return addresses


@dataclass(frozen=True)
class PinnedTarget:
    """A URL that passed every check, plus the only addresses a connection may go to."""

    url: httpx.URL
    host: str
    """ASCII host name as the client wrote it (IDNA-encoded), used for Host and TLS SNI."""
    port: int
    addresses: tuple[IPAddress, ...]
    """Every address the name resolved to, all checked, in the resolver's preference order."""
    is_ip_literal: bool

    @property
    def address(self) -> IPAddress:
        return self.addresses[0]

    def connect_url(self, address: IPAddress) -> httpx.URL:
        """The same URL with its host replaced by a checked address (no DNS at connect)."""
        if address not in self.addresses:
            raise ValueError("only checked addresses may be connected to")
        return self.url.copy_with(host=str(address), port=self.port)


def parse_url(raw: str | httpx.URL) -> httpx.URL:
    """Parse with the parser we also connect with; refuse what URL parsers disagree on."""
    if isinstance(raw, httpx.URL):
        return raw
    # Leading/trailing whitespace (a pasted URL, a form field's newline) is dropped, as
    # browsers do; the stripped string is the one both checked and connected to.
    raw = raw.strip(" \t\r\n")
    if not raw or len(raw) > 8192:
        raise UrlRejectedError("The URL is empty or too long.", param="file_url")
    # Backslashes and whitespace are read differently by different URL parsers
    # ("https://good.com\@127.0.0.1"); no legitimate audio URL needs them unescaped.
    if "\\" in raw or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise UrlRejectedError(
            "The URL contains a backslash, whitespace or control character.", param="file_url"
        )
    try:
        return httpx.URL(raw)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise UrlRejectedError("The URL could not be parsed.", param="file_url") from exc


def check_url_syntax(url: httpx.URL, settings: FetchSettings) -> tuple[str, int]:
    """Scheme, userinfo, port and host-name policy; returns (ascii host, port). No I/O."""
    allowed_schemes = {"https", "http"} if settings.allow_http else {"https"}
    if url.scheme not in allowed_schemes:
        names = " or ".join(sorted(allowed_schemes))
        raise UrlRejectedError(f"Only {names} URLs may be fetched.", param="file_url")
    if url.userinfo:
        raise UrlRejectedError("URLs with credentials (user@host) are refused.", param="file_url")
    try:
        # httpx parses some hosts it cannot IDNA-encode (e.g. with U+3002 as a label dot).
        host = url.raw_host.decode("ascii", errors="replace").lower()
    except UnicodeError as exc:
        raise UrlRejectedError("The URL's host name is not valid.", param="file_url") from exc
    if not host:
        raise UrlRejectedError("The URL has no host.", param="file_url")
    port = url.port if url.port is not None else _DEFAULT_PORTS[url.scheme]
    if not 0 < port < 65536:
        raise UrlRejectedError("The URL names an invalid port.", param="file_url")
    if settings.allowed_ports and port not in settings.allowed_ports:
        raise UrlRejectedError(f"Port {port} is not allowed.", param="file_url")
    name = host.rstrip(".")
    if _host_listed(name, settings.denied_hosts):
        raise UrlRejectedError("This host is not allowed.", param="file_url")
    if settings.allowed_hosts and not _host_listed(name, settings.allowed_hosts):
        raise UrlRejectedError("This host is not in the allowed list.", param="file_url")
    return host, port


async def pin_url(
    raw: str | httpx.URL, settings: FetchSettings, resolver: Resolver
) -> PinnedTarget:
    """Check `raw` completely and return where to connect; raise before any connection."""
    url = parse_url(raw)
    host, port = check_url_syntax(url, settings)
    literal = _ip_literal(host)
    if literal is not None:
        check_address(literal, settings.allowed_networks)
        return PinnedTarget(url, host, port, (literal,), is_ip_literal=True)
    name = host.rstrip(".")
    if _NUMERIC_LOOKING.match(name):
        raise UrlRejectedError(
            "Numeric hosts must be written as a dotted-quad or bracketed IPv6 address.",
            param="file_url",
        )
    if not _HOSTNAME.match(name):
        raise UrlRejectedError("The URL's host is not a valid name.", param="file_url")
    try:
        addresses = await resolver.resolve(name, port)
    except (OSError, UnicodeError) as exc:
        raise FetchError("The URL's host name could not be resolved.", param="file_url") from exc
    if not addresses:
        raise FetchError("The URL's host name resolved to no address.", param="file_url")
    # Every answer must pass: a name that also points somewhere private is refused outright.
    for address in addresses:
        check_address(address, settings.allowed_networks)
    return PinnedTarget(url, host, port, tuple(addresses), is_ip_literal=False)


def check_address(address: IPAddress, allowed_networks: Sequence[str]) -> None:
    """Raise UrlRejectedError unless `address` is public or inside an allowed network."""
    if _in_networks(address, allowed_networks):
        return
    reason = blocked_reason(address)
    if reason is not None:
        raise UrlRejectedError(
            f"The URL points at a non-public address ({reason}).", param="file_url"
        )


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` may not be fetched from (e.g. "loopback"), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped IPv6"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = blocked_reason(embedded)
            if inner is not None:
                return f"{inner} (embedded in IPv6)"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        # Not private, yet not globally routable: CGNAT 100.64/10, 192.0.0/24, ...
        ("non-global", not address.is_global),
    )
    for reason, is_blocked in checks:
        if is_blocked:
            return reason
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one tunnels to (mapped, 6to4, Teredo, NAT64, compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.replace("%25", "%"))
    except ValueError:
        return None


def _in_networks(address: IPAddress, networks: Sequence[str]) -> bool:
    for network in networks:
        parsed = ipaddress.ip_network(network, strict=False)
        if address.version == parsed.version and address in parsed:
            return True
    return False


def _host_listed(host: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False
