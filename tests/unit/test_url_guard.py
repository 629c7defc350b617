"""The SSRF guard's pure decisions: address classes, URL syntax policy, DNS answers checked."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from tests.fixtures.ssrf import MapResolver
from voxtral_gateway.errors import FetchError, UrlRejectedError
from voxtral_gateway.pipeline.url_guard import blocked_reason, check_address, pin_url
from voxtral_gateway.settings import FetchSettings


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "non-global"),
        ("100.127.255.254", "non-global"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "private"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("198.18.0.1", "private"),
        ("192.0.0.170", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback (embedded in IPv6)"),
        ("::ffff:169.254.169.254", "link-local (embedded in IPv6)"),
        ("::ffff:10.0.0.1", "private (embedded in IPv6)"),
        ("::10.0.0.1", "private (embedded in IPv6)"),
        ("2002:a9fe:a9fe::1", "link-local (embedded in IPv6)"),
        ("2002:7f00:1::", "loopback (embedded in IPv6)"),
        ("64:ff9b::10.0.0.1", "private (embedded in IPv6)"),
        ("64:ff9b::169.254.169.254", "link-local (embedded in IPv6)"),
        ("64:ff9b:1::a00:1", "private (embedded in IPv6)"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (embedded in IPv6)"),
        ("2001:db8::1", "private"),
    ],
)
def test_non_public_addresses_are_blocked_with_their_reason(address: str, reason: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "2002:808:808::1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8"])
def test_ipv4_in_ipv6_translation_forms_are_refused_even_for_public_ipv4(address: str) -> None:
    # ::/8 is reserved: a public name has no reason to resolve to these, a bypass attempt does.
    assert blocked_reason(ipaddress.ip_address(address)) == "reserved"


def test_allowed_networks_exempt_only_their_own_addresses() -> None:
    check_address(ipaddress.ip_address("127.0.0.3"), ["127.0.0.3/32"])
    with pytest.raises(UrlRejectedError):
        check_address(ipaddress.ip_address("127.0.0.1"), ["127.0.0.3/32"])
    # An IPv4 network never covers the IPv6-mapped spelling of its addresses.
    with pytest.raises(UrlRejectedError):
        check_address(ipaddress.ip_address("::ffff:127.0.0.3"), ["127.0.0.0/8"])


def test_settings_reject_a_mistyped_network_at_startup() -> None:
    with pytest.raises(ValueError, match="allowed_networks"):
        FetchSettings(allowed_networks=["127.0.0.300/8"])


def _pin(url: str, settings: FetchSettings, resolver: MapResolver | None = None):
    return asyncio.run(pin_url(url, settings, resolver or MapResolver()))


PUBLIC = {"audio.example": ["93.184.216.34"]}


def test_https_is_the_only_scheme_by_default() -> None:
    target = _pin("https://audio.example/a.wav", FetchSettings(), MapResolver(PUBLIC))
    assert (target.host, target.port, str(target.address)) == (
        "audio.example",
        443,
        "93.184.216.34",
    )
    with pytest.raises(UrlRejectedError, match="https"):
        _pin("http://audio.example/a.wav", FetchSettings(), MapResolver(PUBLIC))


def test_surrounding_whitespace_is_dropped_but_inner_whitespace_refused() -> None:
    target = _pin(" https://audio.example/a.wav\r\n", FetchSettings(), MapResolver(PUBLIC))
    assert str(target.url) == "https://audio.example/a.wav"


def test_http_is_opt_in() -> None:
    target = _pin("http://audio.example/a.wav", FetchSettings(allow_http=True), MapResolver(PUBLIC))
    assert target.port == 80


def test_ports_outside_the_allowed_list_are_refused_before_resolving() -> None:
    resolver = MapResolver(PUBLIC)
    with pytest.raises(UrlRejectedError, match="Port 22"):
        _pin("https://audio.example:22/", FetchSettings(), resolver)
    assert resolver.lookups == []


def test_connect_url_targets_the_checked_address_and_keeps_the_path() -> None:
    target = _pin("https://Audio.Example:443/a%20b.wav?x=1", FetchSettings(), MapResolver(PUBLIC))
    assert str(target.connect_url(target.address)) == "https://93.184.216.34/a%20b.wav?x=1"
    with pytest.raises(ValueError, match="checked"):
        target.connect_url(ipaddress.ip_address("127.0.0.1"))


@pytest.mark.parametrize(
    ("settings", "url", "allowed"),
    [
        (FetchSettings(denied_hosts=["audio.example"]), "https://audio.example/", False),
        (FetchSettings(denied_hosts=["*.example"]), "https://cdn.audio.example/", False),
        (FetchSettings(denied_hosts=["audio.example"]), "https://AUDIO.example./", False),
        (FetchSettings(allowed_hosts=["*.example"]), "https://cdn.audio.example/", True),
        (FetchSettings(allowed_hosts=["audio.example"]), "https://other.example/", False),
        (FetchSettings(allowed_hosts=["*.example"]), "https://example.evil/", False),
        (FetchSettings(allowed_hosts=["*.example"]), "https://evilexample/", False),
    ],
)
def test_host_allow_and_deny_lists(settings: FetchSettings, url: str, allowed: bool) -> None:
    resolver = MapResolver(
        {
            name: ["93.184.216.34"]
            for name in (
                "audio.example",
                "cdn.audio.example",
                "other.example",
                "example.evil",
                "evilexample",
            )
        }
    )
    if allowed:
        _pin(url, settings, resolver)
    else:
        with pytest.raises(UrlRejectedError):
            _pin(url, settings, resolver)


def test_allowed_host_still_cannot_point_at_a_private_address() -> None:
    resolver = MapResolver({"audio.example": ["10.0.0.1"]})
    with pytest.raises(UrlRejectedError, match="private"):
        _pin("https://audio.example/", FetchSettings(allowed_hosts=["audio.example"]), resolver)


def test_every_dns_answer_is_checked_not_only_the_first() -> None:
    resolver = MapResolver({"audio.example": ["93.184.216.34", "169.254.169.254"]})
    with pytest.raises(UrlRejectedError, match="link-local"):
        _pin("https://audio.example/", FetchSettings(), resolver)


def test_names_are_resolved_exactly_once_per_check() -> None:
    resolver = MapResolver({"audio.example": [["93.184.216.34"], ["127.0.0.1"]]})
    target = _pin("https://audio.example/", FetchSettings(), resolver)
    assert str(target.address) == "93.184.216.34"
    assert resolver.lookups == ["audio.example"]


def test_ip_literals_are_never_sent_to_the_resolver() -> None:
    resolver = MapResolver()
    target = _pin("https://[2606:4700::1111]/a.wav", FetchSettings(), resolver)
    assert target.is_ip_literal and resolver.lookups == []


def test_unresolvable_names_are_a_fetch_error_not_a_crash() -> None:
    with pytest.raises(FetchError, match="resolved"):
        _pin("https://nowhere.example/", FetchSettings(), MapResolver())


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/",
        "https://0x7f000001/",
        "https://0177.0.0.1/",
        "https://127.1/",
        "https://8.8.8.8./",
        "https://0/",
        "https://%31%32%37.0.0.1/",
        "https://a_b@audio.example/",
        "https://audio.example\\@evil/",
        "https://audio.example/ a.wav",
        "https://audio.example/\na.wav",
        "https:///a.wav",
        "https:a.wav",
        "",
    ],
)
def test_ambiguous_or_malformed_urls_are_refused_before_resolving(url: str) -> None:
    resolver = MapResolver(PUBLIC)
    with pytest.raises(UrlRejectedError):
        _pin(url, FetchSettings(), resolver)
    assert resolver.lookups == []
