"""`file_url` end to end: a loopback server allowed by configuration, fetched by the gateway's
guarded fetcher, transcribed by Whisper tiny.en on vLLM."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from bench.accuracy import wer
from tests.fixtures.audio import AudioClip, AudioFactory
from tests.fixtures.ssrf import SERVER_HOST, AudioServer, TargetListeners
from voxtral_gateway.settings import FetchSettings

pytestmark = pytest.mark.engine

MAX_WER = 0.15  # espeak-ng sentences through Whisper tiny.en measure ~0.0-0.05


@pytest.fixture
def sentence(audio_factory: AudioFactory) -> AudioClip:
    # Not sentence 0: Whisper tiny.en mishears it whole ("quick roundfire"), as vLLM alone does,
    # and a short clip reaches the engine whole (the head start).
    return audio_factory.sentence(1)


@pytest.fixture
def sentence_server(sentence: AudioClip) -> Iterator[AudioServer]:
    server = AudioServer(SERVER_HOST, sentence.read_bytes())
    yield server
    server.close()


@pytest.fixture
def url_gateway(gateway_factory, whisper_engine):
    return gateway_factory(
        engine=whisper_engine,
        fetch=FetchSettings(
            allow_http=True, allowed_ports=[], allowed_networks=[f"{SERVER_HOST}/32"]
        ),
    )


def test_allowed_file_url_transcribes_as_form_and_json(
    url_gateway, sentence_server: AudioServer, sentence: AudioClip, http: httpx.Client
) -> None:
    endpoint = f"{url_gateway.base_url}/v1/audio/transcriptions"
    url = sentence_server.url("/chain/2")  # two redirects on the allowed server, then the file
    as_form = http.post(endpoint, files={"model": (None, "w"), "file_url": (None, url)})
    as_json = http.post(endpoint, json={"model": "w", "file_url": url})
    for response in (as_form, as_json):
        assert response.status_code == 200, response.text
        assert wer(sentence.text, response.json()["text"]) <= MAX_WER, response.text
    assert sentence_server.log.paths.count("/chain/0") == 2


def test_inline_data_url_transcribes(url_gateway, sentence: AudioClip, http: httpx.Client) -> None:
    inline = "data:audio/wav;base64," + base64.b64encode(sentence.read_bytes()).decode()
    response = http.post(
        f"{url_gateway.base_url}/v1/audio/transcriptions", json={"model": "w", "audio": inline}
    )
    assert response.status_code == 200, response.text
    assert wer(sentence.text, response.json()["text"]) <= MAX_WER


def test_same_gateway_still_refuses_other_loopback_addresses(
    url_gateway, target_listeners: TargetListeners, http: httpx.Client
) -> None:
    endpoint = f"{url_gateway.base_url}/v1/audio/transcriptions"
    for url in (
        f"http://127.0.0.1:{target_listeners.port}/a.wav",
        f"http://[::1]:{target_listeners.port}/a.wav",
        f"http://2130706433:{target_listeners.port}/a.wav",
    ):
        response = http.post(endpoint, json={"model": "w", "file_url": url})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "url_not_allowed"
    assert target_listeners.total_accepted() == 0
