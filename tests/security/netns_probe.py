"""Run inside `unshare --net` only: literal private/metadata targets, each with a real listener.

The namespace has nothing but `lo`, and the test adds the private addresses (169.254.169.254,
10.0.0.1, ...) and one public stand-in (93.184.216.34) to it, so even a guard bug cannot send a
packet off the machine. Prints one JSON object for tests/security/test_ssrf_netns.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import urllib.parse

from tests.fixtures.ssrf import AudioServer, ConnectionCounter, MapResolver
from voxtral_gateway.errors import GatewayError
from voxtral_gateway.pipeline.fetch import fetch_audio
from voxtral_gateway.settings import FetchSettings, LimitSettings

PRIVATE_V4 = [
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "198.18.0.1",
    "192.0.0.170",
]
PRIVATE_V6 = ["fd00:ec2::254", "fd00::1"]
PUBLIC_STAND_IN = "93.184.216.34"
ADDRESSES = PRIVATE_V4 + PRIVATE_V6 + [PUBLIC_STAND_IN]

NAMES: dict[str, list[str]] = {
    "public.test": [PUBLIC_STAND_IN],
    "metadata.google.internal": ["169.254.169.254"],
    "metadata.test": ["fd00:ec2::254"],
    "internal.test": ["10.0.0.1"],
    "public-then-private.test": [PUBLIC_STAND_IN, "10.0.0.1"],
    "private-then-public.test": ["192.168.1.1", PUBLIC_STAND_IN],
}


def netns_cases() -> list[tuple[str, str]]:
    def via(target: str) -> str:
        return "http://public.test/redirect?to=" + urllib.parse.quote(target, safe="")

    return [
        ("metadata-http", "http://169.254.169.254/latest/meta-data/"),
        ("metadata-https", "https://169.254.169.254/latest/meta-data/"),
        ("metadata-v6", "http://[fd00:ec2::254]/latest/meta-data/"),
        ("metadata-decimal", "http://2852039166/"),
        ("metadata-hex", "http://0xa9fea9fe/"),
        ("metadata-octal", "http://0251.0376.0251.0376/"),
        ("metadata-short", "http://169.254.43518/"),
        ("metadata-mapped", "http://[::ffff:169.254.169.254]/"),
        ("metadata-mapped-hex", "http://[::ffff:a9fe:a9fe]/"),
        ("metadata-6to4", "http://[2002:a9fe:a9fe::]/"),
        ("metadata-nat64", "http://[64:ff9b::a9fe:a9fe]/"),
        ("metadata-name", "http://metadata.google.internal/computeMetadata/v1/"),
        ("metadata-v6-name", "http://metadata.test/"),
        ("rfc1918-10", "http://10.0.0.1/"),
        ("rfc1918-172", "https://172.16.0.1/"),
        ("rfc1918-192", "http://192.168.1.1/"),
        ("cgnat", "http://100.64.0.1/"),
        ("benchmark", "http://198.18.0.1/"),
        ("ietf-protocol", "http://192.0.0.170/"),
        ("ula-v6", "http://[fd00::1]/"),
        ("name-private", "http://internal.test/"),
        ("name-public-then-private", "http://public-then-private.test/audio"),
        ("name-private-then-public", "http://private-then-public.test/audio"),
        ("redirect-metadata", via("http://169.254.169.254/latest/meta-data/")),
        ("redirect-private-name", via("http://internal.test/")),
        ("redirect-decimal-private", via("http://167772161/")),
    ]


async def _try(url: str, settings: FetchSettings) -> tuple[str, int]:
    try:
        await fetch_audio(url, settings, LimitSettings(), resolver=MapResolver(NAMES))
    except GatewayError as exc:
        return type(exc).__name__, exc.status_code
    return "fetched", 200


def main() -> None:
    interfaces = sorted(name for _index, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        # Refuse to aim at private addresses from a namespace that could route them.
        print(json.dumps({"error": f"not an isolated namespace: {interfaces}"}))
        sys.exit(2)
    counters = {
        (host, port): ConnectionCounter(host, port)
        for host in PRIVATE_V4 + PRIVATE_V6
        for port in (80, 443)
    }
    public = AudioServer(PUBLIC_STAND_IN, b"public audio", port=80)
    # Defaults except http, which the metadata service speaks.
    settings = FetchSettings(allow_http=True)
    results = {name: asyncio.run(_try(url, settings)) for name, url in netns_cases()}
    accepted = {f"{h}:{p}": c.accepted for (h, p), c in counters.items() if c.accepted}
    # Controls: the public stand-in is fetchable with defaults, and a counter does count
    # once its network is explicitly allowed.
    public_result = asyncio.run(_try("http://public.test/audio", settings))
    allowed = settings.model_copy(update={"allowed_networks": ["169.254.169.254/32"]})
    control_result = asyncio.run(_try("http://169.254.169.254/", allowed))
    control_accepted = counters[("169.254.169.254", 80)].accepted
    print(
        json.dumps(
            {
                "results": results,
                "accepted": accepted,
                "public_result": public_result,
                "public_paths": public.log.paths,
                "control_result": control_result,
                "control_accepted": control_accepted,
            }
        )
    )


if __name__ == "__main__":
    main()
