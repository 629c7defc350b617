"""Every hostile `file_url` is refused with a 4xx before a single connection reaches a target.

The targets are connection counters on 127.0.0.1, 127.0.0.2 and ::1 (one port); the only
address the guard may reach is the redirect server on 127.0.0.3. The URLs go through the same
two calls the route makes: `classify_file_url`, then the fetcher or the inline decoder.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.ssrf import SERVER_HOST, AudioServer, MapResolver, TargetListeners
from tests.security.hostile_urls import HOSTILE_NAMES, HOSTILE_URL_IDS, hostile_urls
from voxtral_gateway.errors import GatewayError, UrlRejectedError
from voxtral_gateway.pipeline.fetch import fetch_audio
from voxtral_gateway.pipeline.inline import classify_file_url, decode_inline_audio
from voxtral_gateway.settings import FetchSettings, LimitSettings

# As permissive as a test server needs (http, any port), so only the address checks refuse.
SETTINGS = FetchSettings(
    allow_http=True, allowed_ports=[], allowed_networks=[f"{SERVER_HOST}/32"], max_redirects=5
)
LIMITS = LimitSettings()


async def _ingest(value: str, resolver: MapResolver) -> bytes:
    if classify_file_url(value) == "inline":
        return decode_inline_audio(value, LIMITS)
    return await fetch_audio(value, SETTINGS, LIMITS, resolver=resolver)


def test_catalogue_has_at_least_forty_hostile_urls() -> None:
    assert len(HOSTILE_URL_IDS) >= 40
    assert len(set(HOSTILE_URL_IDS)) == len(HOSTILE_URL_IDS)


@pytest.mark.parametrize("case", HOSTILE_URL_IDS)
def test_hostile_url_is_refused_without_connecting(
    case: str, target_listeners: TargetListeners, audio_server: AudioServer
) -> None:
    url = dict(hostile_urls(target_listeners.port, audio_server.port))[case]
    resolver = MapResolver(HOSTILE_NAMES)
    with pytest.raises(GatewayError) as refused:
        asyncio.run(_ingest(url, resolver))
    assert 400 <= refused.value.status_code < 500
    assert target_listeners.total_accepted() == 0
    # Everything that looks like a URL is stopped by policy, not by a failed connection.
    if classify_is_remote(url):
        assert isinstance(refused.value, UrlRejectedError), refused.value.message


def classify_is_remote(url: str) -> bool:
    try:
        return classify_file_url(url) == "remote"
    except UrlRejectedError:
        return True


def test_listeners_do_count_a_connection_the_guard_allows(
    target_listeners: TargetListeners,
) -> None:
    # The control for every test above: were the guard to let a URL through, it would show.
    permissive = SETTINGS.model_copy(update={"allowed_networks": ["127.0.0.0/8", "::1/128"]})
    for url in (
        f"http://127.0.0.1:{target_listeners.port}/",
        f"http://127.0.0.2:{target_listeners.port}/",
        f"http://[::1]:{target_listeners.port}/",
    ):
        with pytest.raises(GatewayError):
            asyncio.run(fetch_audio(url, permissive, LIMITS, resolver=MapResolver()))
    assert target_listeners.total_accepted() == 3


def test_redirect_server_is_reachable_so_refusals_are_not_a_dead_server(
    audio_server: AudioServer,
) -> None:
    body = asyncio.run(
        fetch_audio(audio_server.url("/chain/2"), SETTINGS, LIMITS, resolver=MapResolver())
    )
    assert body == audio_server.body
