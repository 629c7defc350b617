"""The fetcher against real loopback servers: pinning, redirects, TLS names, caps, timeouts."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.ssrf import (
    AUDIO_BODY,
    SERVER_HOST,
    AudioServer,
    MapResolver,
    TargetListeners,
    ThrowawayCertificates,
)
from voxtral_gateway.errors import AudioLimitError, FetchError, UrlRejectedError
from voxtral_gateway.pipeline.fetch import fetch_audio
from voxtral_gateway.settings import FetchSettings, LimitSettings

ALLOW_SERVER = FetchSettings(
    allow_http=True, allowed_ports=[], allowed_networks=[f"{SERVER_HOST}/32"]
)
LIMITS = LimitSettings()


def _fetch(
    url: str,
    settings: FetchSettings = ALLOW_SERVER,
    limits: LimitSettings = LIMITS,
    resolver: MapResolver | None = None,
) -> bytes:
    return asyncio.run(fetch_audio(url, settings, limits, resolver=resolver or MapResolver()))


def test_fetches_the_body_from_an_allowed_server(audio_server: AudioServer) -> None:
    assert _fetch(audio_server.url("/audio")) == AUDIO_BODY


def test_connects_to_the_checked_address_with_the_name_in_the_host_header(
    audio_server: AudioServer,
) -> None:
    resolver = MapResolver({"audio.test": [SERVER_HOST]})
    assert _fetch(audio_server.url("/audio", host="audio.test"), resolver=resolver) == AUDIO_BODY
    assert audio_server.log.host_headers == [f"audio.test:{audio_server.port}"]


def test_dns_is_asked_once_so_a_rebinding_answer_is_never_used(
    audio_server: AudioServer, target_listeners: TargetListeners
) -> None:
    # A rebinding name answers the allowed server first and a forbidden address afterwards.
    resolver = MapResolver({"rebind.test": [[SERVER_HOST], ["127.0.0.1"]]})
    url = audio_server.url("/audio", host="rebind.test")
    assert _fetch(url, resolver=resolver) == AUDIO_BODY
    assert resolver.lookups == ["rebind.test"]
    assert audio_server.log.paths == ["/audio"]
    assert target_listeners.total_accepted() == 0


def test_falls_back_to_the_next_checked_address_when_the_first_refuses(
    audio_server: AudioServer, target_listeners: TargetListeners
) -> None:
    # Like a dual-stack name whose IPv6 address is unreachable from the gateway.
    settings = ALLOW_SERVER.model_copy(
        update={"allowed_networks": ["127.0.0.4/32", f"{SERVER_HOST}/32"]}
    )
    resolver = MapResolver({"dual.test": ["127.0.0.4", SERVER_HOST]})
    url = audio_server.url("/audio", host="dual.test")
    assert _fetch(url, settings, resolver=resolver) == AUDIO_BODY
    assert resolver.lookups == ["dual.test"]


def test_each_redirect_hop_is_resolved_and_checked_again(
    audio_server: AudioServer, target_listeners: TargetListeners
) -> None:
    # Second lookup (for the relative redirect's hop) answers a forbidden address.
    resolver = MapResolver({"rebind.test": [[SERVER_HOST], ["127.0.0.1"]]})
    with pytest.raises(UrlRejectedError, match="loopback"):
        _fetch(audio_server.url("/chain/1", host="rebind.test"), resolver=resolver)
    assert resolver.lookups == ["rebind.test", "rebind.test"]
    assert target_listeners.total_accepted() == 0


def test_relative_redirects_keep_the_name_and_are_followed_up_to_the_limit(
    audio_server: AudioServer,
) -> None:
    resolver = MapResolver({"audio.test": [SERVER_HOST]})
    settings = ALLOW_SERVER.model_copy(update={"max_redirects": 3})
    assert _fetch(audio_server.url("/chain/3", host="audio.test"), settings, resolver=resolver)
    assert set(audio_server.log.host_headers) == {f"audio.test:{audio_server.port}"}
    with pytest.raises(FetchError, match="More than 3 redirects"):
        _fetch(audio_server.url("/chain/4"), settings)


def test_zero_redirects_allowed_refuses_the_first(audio_server: AudioServer) -> None:
    settings = ALLOW_SERVER.model_copy(update={"max_redirects": 0})
    with pytest.raises(FetchError, match="redirects"):
        _fetch(audio_server.url("/chain/1"), settings)


def test_body_larger_than_the_cap_is_refused_while_streaming(audio_server: AudioServer) -> None:
    limits = LimitSettings(max_upload_bytes=1024 * 1024)
    # /forever never ends: without the streaming cap this would hang until the total timeout.
    settings = ALLOW_SERVER.model_copy(update={"total_timeout_s": 30.0})
    with pytest.raises(AudioLimitError, match="larger than 1048576 bytes"):
        _fetch(audio_server.url("/forever"), settings, limits)


def test_declared_length_past_the_cap_is_refused_before_reading(audio_server: AudioServer) -> None:
    with pytest.raises(AudioLimitError):
        _fetch(audio_server.url("/declared-huge"))


def test_body_exactly_at_the_cap_is_accepted_and_one_byte_less_is_not(
    audio_server: AudioServer,
) -> None:
    assert _fetch(
        audio_server.url("/audio"), limits=LimitSettings(max_upload_bytes=len(AUDIO_BODY))
    )
    with pytest.raises(AudioLimitError):
        _fetch(
            audio_server.url("/audio"), limits=LimitSettings(max_upload_bytes=len(AUDIO_BODY) - 1)
        )


def test_total_timeout_bounds_a_server_that_trickles_forever(audio_server: AudioServer) -> None:
    settings = ALLOW_SERVER.model_copy(update={"total_timeout_s": 1.0, "read_timeout_s": 5.0})
    with pytest.raises(FetchError, match="longer than 1 s"):
        _fetch(audio_server.url("/trickle"), settings)


def test_read_timeout_fires_between_slow_chunks(audio_server: AudioServer) -> None:
    settings = ALLOW_SERVER.model_copy(update={"read_timeout_s": 0.05})
    with pytest.raises(FetchError, match="timed out"):
        _fetch(audio_server.url("/trickle"), settings)


def test_compressed_responses_are_refused_rather_than_expanded(audio_server: AudioServer) -> None:
    with pytest.raises(FetchError, match="Content-Encoding"):
        _fetch(audio_server.url("/gzip"))


@pytest.mark.parametrize("status", [404, 500, 204])
def test_error_statuses_are_a_fetch_error(audio_server: AudioServer, status: int) -> None:
    if status == 204:
        assert _fetch(audio_server.url(f"/status/{status}")) == b""
        return
    with pytest.raises(FetchError, match=f"HTTP {status}"):
        _fetch(audio_server.url(f"/status/{status}"))


def test_connection_refused_on_an_allowed_address_is_a_fetch_error(
    target_listeners: TargetListeners,
) -> None:
    settings = ALLOW_SERVER.model_copy(update={"allowed_networks": ["127.0.0.4/32"]})
    with pytest.raises(FetchError, match="ConnectError"):
        _fetch(f"http://127.0.0.4:{target_listeners.port}/", settings)


def test_proxy_environment_variables_are_ignored(
    audio_server: AudioServer, target_listeners: TargetListeners, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would resolve the name itself and connect wherever DNS says at that moment.
    proxy = f"http://127.0.0.1:{target_listeners.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert _fetch(audio_server.url("/audio")) == AUDIO_BODY
    assert target_listeners.total_accepted() == 0


def test_disabled_fetching_refuses_without_connecting(audio_server: AudioServer) -> None:
    settings = ALLOW_SERVER.model_copy(update={"enabled": False})
    with pytest.raises(UrlRejectedError, match="disabled"):
        _fetch(audio_server.url("/audio"), settings)
    assert audio_server.log.paths == []


def _tls_settings(certs: ThrowawayCertificates) -> FetchSettings:
    return ALLOW_SERVER.model_copy(update={"ca_bundle_path": str(certs.ca_path)})


def test_https_is_pinned_to_the_ip_but_sends_and_verifies_the_name(
    tls_audio_server: AudioServer, throwaway_certificates: ThrowawayCertificates
) -> None:
    resolver = MapResolver({"audio.test": [SERVER_HOST]})
    url = tls_audio_server.url("/audio", host="audio.test")
    assert _fetch(url, _tls_settings(throwaway_certificates), resolver=resolver) == AUDIO_BODY
    assert tls_audio_server.log.sni_names == ["audio.test"]
    assert tls_audio_server.log.host_headers == [f"audio.test:{tls_audio_server.port}"]


def test_https_certificate_for_another_name_is_refused(
    tls_audio_server: AudioServer, throwaway_certificates: ThrowawayCertificates
) -> None:
    # Same IP, different name: verifying against the IP or skipping SNI would let this pass.
    resolver = MapResolver({"evil.test": [SERVER_HOST]})
    url = tls_audio_server.url("/audio", host="evil.test")
    with pytest.raises(FetchError, match="ConnectError"):
        _fetch(url, _tls_settings(throwaway_certificates), resolver=resolver)
    assert tls_audio_server.log.paths == []


def test_https_with_an_untrusted_ca_is_refused(tls_audio_server: AudioServer) -> None:
    resolver = MapResolver({"audio.test": [SERVER_HOST]})
    with pytest.raises(FetchError):
        _fetch(tls_audio_server.url("/audio", host="audio.test"), resolver=resolver)
    assert tls_audio_server.log.paths == []


def test_https_to_an_ip_literal_verifies_against_the_ip(
    tls_audio_server: AudioServer, throwaway_certificates: ThrowawayCertificates
) -> None:
    with pytest.raises(FetchError):
        _fetch(tls_audio_server.url("/audio"), _tls_settings(throwaway_certificates))
    assert tls_audio_server.log.paths == []


def test_redirect_to_a_port_outside_the_allowed_list_is_refused(
    audio_server: AudioServer, target_listeners: TargetListeners
) -> None:
    settings = ALLOW_SERVER.model_copy(
        update={
            "allowed_ports": [audio_server.port],
            "allowed_networks": [f"{SERVER_HOST}/32", "127.0.0.2/32"],
        }
    )
    target = f"http://127.0.0.2:{target_listeners.port}/a.wav"
    with pytest.raises(UrlRejectedError, match=f"Port {target_listeners.port}"):
        _fetch(audio_server.url("/redirect?to=" + target), settings)
    assert target_listeners.total_accepted() == 0


def test_https_redirect_down_to_http_is_refused_when_http_is_off(
    tls_audio_server: AudioServer, throwaway_certificates: ThrowawayCertificates
) -> None:
    settings = _tls_settings(throwaway_certificates).model_copy(update={"allow_http": False})
    resolver = MapResolver({"audio.test": [SERVER_HOST]})
    downgrade = f"http://audio.test:{tls_audio_server.port}/audio"
    url = tls_audio_server.url("/redirect?to=" + downgrade, host="audio.test")
    with pytest.raises(UrlRejectedError, match="Only https"):
        _fetch(url, settings, resolver=resolver)
    assert tls_audio_server.log.paths == ["/redirect?to=" + downgrade]
