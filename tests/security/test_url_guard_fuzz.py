"""Property tests for the URL guard: whatever string a client sends, the guard either refuses
it with a 4xx GatewayError or pins it to addresses that are public or explicitly allowed.

Anything else escaping (an IndexError from a parser, a UnicodeError) would be a 500; a pinned
private address would be an SSRF. No I/O: the resolver is a map that never touches DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.ssrf import MapResolver
from voxtral_gateway.errors import GatewayError
from voxtral_gateway.pipeline.inline import classify_file_url
from voxtral_gateway.pipeline.url_guard import blocked_reason, pin_url
from voxtral_gateway.settings import FetchSettings

SETTINGS = FetchSettings(allow_http=True, allowed_ports=[], allowed_networks=["127.0.0.3/32"])
NAMES = {
    "public.test": ["93.184.216.34"],
    "loop.test": ["127.0.0.1"],
    "meta.test": ["169.254.169.254"],
    "allowed.test": ["127.0.0.3"],
}
ALLOWED = ipaddress.ip_network("127.0.0.3/32")

_HOSTS = st.sampled_from(
    [
        "public.test", "loop.test", "meta.test", "allowed.test", "127.0.0.1", "127.0.0.3",
        "2130706433", "0x7f.1", "[::1]", "[::ffff:127.0.0.1]", "169.254.169.254", "0",
        "[fe80::1%25eth0]", "93.184.216.34", "localhost", "%31%32%37.0.0.1", "127。0。0。1",
    ]
)  # fmt: skip
_JUNK = st.lists(
    # Whitespace and backslashes are refused outright (see the catalogue); leave them rare so
    # most examples reach host parsing, resolution and the address checks.
    st.sampled_from(list("@:/?#[]%.0x1fA。") * 4 + list(" \t\\\x00é") + ["%2f", "%40", "//"]),
    max_size=4,
).map("".join)
_MAYBE_JUNK = st.one_of(st.just(""), st.just(""), st.just(""), _JUNK)


@st.composite
def _urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http"] * 4 + ["https"] * 4 + ["HTTP", "ftp", "file", ""]))
    userinfo = draw(st.sampled_from([""] * 8 + ["user@", "public.test@", "a:b@"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":0", ":65536", ":8080", ":-1"]))
    return (
        f"{scheme}://{draw(_MAYBE_JUNK)}{userinfo}{draw(_HOSTS)}{draw(_MAYBE_JUNK)}{port}"
        f"{draw(_MAYBE_JUNK)}/a.wav{draw(_MAYBE_JUNK)}"
    )


def _assert_safe(url: str) -> None:
    try:
        if classify_file_url(url) == "inline":
            return
        target = asyncio.run(pin_url(url, SETTINGS, MapResolver(NAMES)))
    except GatewayError as exc:
        assert 400 <= exc.status_code < 500
        return
    for address in target.addresses:
        assert address in ALLOWED or blocked_reason(address) is None, (url, address)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_urls())
def test_structured_hostile_urls_never_pin_a_forbidden_address(url: str) -> None:
    _assert_safe(url)


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_is_refused_cleanly_or_pinned_safely(text: str) -> None:
    _assert_safe(text)
