"""The catalogue of hostile `file_url`s: every one must be refused before any connection.

Targets are the connection counters of tests/fixtures/ssrf.py (127.0.0.1, 127.0.0.2 and ::1,
one port); the only reachable server, used as a redirect hop, sits on SERVER_HOST.
"""

from __future__ import annotations

import urllib.parse

from tests.fixtures.ssrf import SERVER_HOST

# Names the test resolver knows; every one of them points at a forbidden loopback target,
# except that `mixed.test` lists the allowed server first (a guard checking only the first
# answer would connect there and the fetch would wrongly succeed).
HOSTILE_NAMES: dict[str, list[str]] = {
    "localhost": ["127.0.0.1"],
    "a.localhost": ["127.0.0.1"],
    "loop.test": ["127.0.0.2"],
    "v6.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "mixed.test": [SERVER_HOST, "127.0.0.1"],
}


def hostile_urls(port: int, server_port: int) -> list[tuple[str, str]]:
    """(id, url) pairs that must all be refused before connecting to any target listener.

    `port` is the target listeners' port; `server_port` is that of an allowed plain-HTTP
    server on SERVER_HOST, used as a redirect hop.
    """
    p = port
    server = f"http://{SERVER_HOST}:{server_port}"

    def via(target: str) -> str:
        return f"{server}/redirect?to=" + urllib.parse.quote(target, safe="")

    return [
        # Loopback written every way inet_aton, IDNA and IPv6 allow.
        ("v4-canonical", f"http://127.0.0.1:{p}/a.wav"),
        ("v4-https", f"https://127.0.0.1:{p}/a.wav"),
        ("v4-other-loopback", f"http://127.0.0.2:{p}/a.wav"),
        ("decimal", f"http://2130706433:{p}/"),
        ("decimal-https", f"https://2130706433:{p}/"),
        ("octal", f"http://0177.0.0.1:{p}/"),
        ("octal-integer", f"http://017700000001:{p}/"),
        ("hex", f"http://0x7f000001:{p}/"),
        ("hex-dotted", f"http://0x7f.0x0.0x0.0x1:{p}/"),
        ("hex-short", f"http://0x7f.1:{p}/"),
        ("short-two-parts", f"http://127.1:{p}/"),
        ("short-three-parts", f"http://127.0.1:{p}/"),
        ("trailing-dot", f"http://127.0.0.1.:{p}/"),
        ("zero", f"http://0:{p}/"),
        ("unspecified-v4", f"http://0.0.0.0:{p}/"),
        ("ideographic-dots", f"http://127\u30020\u30020\u30021:{p}/"),
        ("percent-encoded-host", f"http://%31%32%37.0.0.1:{p}/"),
        ("v6-loopback", f"http://[::1]:{p}/"),
        ("v6-loopback-long", f"http://[0:0:0:0:0:0:0:1]:{p}/"),
        ("v6-unspecified", f"http://[::]:{p}/"),
        ("v4-mapped", f"http://[::ffff:127.0.0.1]:{p}/"),
        ("v4-mapped-hex", f"http://[::ffff:7f00:1]:{p}/"),
        ("v4-compatible", f"http://[::127.0.0.1]:{p}/"),
        ("6to4", f"http://[2002:7f00:1::]:{p}/"),
        ("nat64", f"http://[64:ff9b::127.0.0.1]:{p}/"),
        ("teredo", f"http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{p}/"),
        ("v6-scoped", f"http://[::1%25lo]:{p}/"),
        # Names the test resolver maps to loopback.
        ("name-localhost", f"http://localhost:{p}/"),
        ("name-localhost-upper-dot", f"http://LOCALHOST.:{p}/"),
        ("name-sub-localhost", f"http://a.localhost:{p}/"),
        ("name-to-other-loopback", f"http://loop.test:{p}/"),
        ("name-to-v6-loopback", f"https://v6.test:{p}/"),
        ("name-to-v4-mapped", f"http://mapped.test:{p}/"),
        ("name-allowed-and-loopback", f"http://mixed.test:{p}/"),
        # Credentials and backslashes that make parsers disagree on the host.
        ("userinfo", f"http://good.example@127.0.0.1:{p}/"),
        ("userinfo-password", f"https://user:pass@127.0.0.1:{p}/"),
        ("userinfo-to-allowed-host", f"http://user@{SERVER_HOST}:{server_port}/audio"),
        ("backslash-at", f"http://good.example\\@127.0.0.1:{p}/"),
        ("backslash-path", f"http://127.0.0.1:{p}\\good.example/"),
        ("fragment-at", f"http://127.0.0.1:{p}#@good.example/"),
        ("tab-in-host", f"http://127.0.0.1\t:{p}/"),
        # Schemes other than http(s).
        ("file", "file:///etc/passwd"),
        ("file-localhost", "file://localhost/etc/passwd"),
        ("ftp", f"ftp://127.0.0.1:{p}/a.wav"),
        ("gopher", f"gopher://127.0.0.1:{p}/_GET%20/"),
        ("dict", f"dict://127.0.0.1:{p}/info"),
        ("websocket", f"ws://127.0.0.1:{p}/"),
        ("jar", f"jar:http://127.0.0.1:{p}/a.jar!/"),
        # Redirects from an allowed server to forbidden targets, each hop re-checked.
        ("redirect-v4", via(f"http://127.0.0.1:{p}/")),
        ("redirect-decimal", via(f"http://2130706433:{p}/")),
        ("redirect-v6", via(f"http://[::1]:{p}/")),
        ("redirect-v4-mapped", via(f"http://[::ffff:127.0.0.1]:{p}/")),
        ("redirect-unspecified", via(f"http://0.0.0.0:{p}/")),
        ("redirect-name", via(f"http://loop.test:{p}/")),
        ("redirect-scheme-relative", via(f"//127.0.0.2:{p}/")),
        ("redirect-userinfo", via(f"http://a@127.0.0.1:{p}/")),
        ("redirect-file", via("file:///etc/passwd")),
        ("redirect-gopher", via(f"gopher://127.0.0.1:{p}/_x")),
        ("redirect-twice", via(via(f"http://127.0.0.1:{p}/"))),
    ]


HOSTILE_URL_IDS = [name for name, _ in hostile_urls(0, 0)]
