"""Languages on real engines: multilingual Whisper base for detection, truthful verbose_json
and translations; the tiny Voxtral for the instruct-mode translation path."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import openai
import pytest
import srt
import webvtt
from aiohttp import web
from mistralai.client import Mistral

from bench.corpus import write_wav
from bench.multilingual import LANGUAGES, speak, utterances, write_clip
from tests.fixtures.gateway import RunningGateway, start_gateway
from voxtral_gateway.settings import Settings

pytestmark = pytest.mark.engine

# Lean: languages Whisper base recognises reliably in espeak-ng's voices (bench/results/
# languages-cpu-whisper-base has all six); one sentence each, 3.6-4.8 s.
DETECTED = ("de", "es", "it", "fr")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("languages")
    chosen = utterances(DETECTED, per_language=1)
    paths = {}
    for utterance in chosen:
        paths[utterance.language] = tmp / f"{utterance.language}.wav"
        write_wav(paths[utterance.language], speak(utterance))
    # Two languages in one file, a pause between them: VAD cuts them apart.
    german, spanish = (speak(u) for u in utterances(("de", "es"), per_language=1))
    pause = np.zeros(16_000 * 2, dtype=np.float32)
    paths["mixed"] = tmp / "mixed.wav"
    write_wav(paths["mixed"], np.concatenate([german, pause, spanish]))
    return paths


@pytest.fixture(scope="module")
def base_gateway(whisper_base_engine) -> Iterator[RunningGateway]:
    gateway = start_gateway(Settings(upstream_urls=[whisper_base_engine.base_url]))
    yield gateway
    gateway.stop()


def _client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0)


def test_spoken_language_is_detected_per_clip(base_gateway, clips) -> None:
    client = _client(base_gateway)
    for language in DETECTED:
        result = client.audio.transcriptions.create(
            model="w", file=clips[language].open("rb"), response_format="verbose_json"
        )
        assert result.language == language, (language, result.text)


def test_mixed_language_file_reports_language_per_segment(
    whisper_base_engine, gateway_factory, clips
) -> None:
    # Windows shorter than the file: VAD cuts at the pause between the languages.
    gateway = gateway_factory(
        upstream_urls=[whisper_base_engine.base_url], vad={"segment_max_s": 6.0}
    )
    result = _client(gateway).audio.transcriptions.create(
        model="w", file=clips["mixed"].open("rb"), response_format="verbose_json"
    )
    languages = [segment.model_extra["language"] for segment in result.segments]
    assert languages == ["de", "es"]
    assert result.language == "de"  # the longer part


def test_language_candidates_fix_a_clip_whisper_base_hears_as_another_language(
    whisper_base_engine, gateway_factory, tmp_path
) -> None:
    """The corpus's second French clip: vLLM and the detector both hear Korean (bench/results/
    languages-cpu-whisper-base). With the deployment's languages as candidates, the gateway
    picks French among them and the engine transcribes in French, not in Hangul. Both ways a
    clip reaches the engine: the whole-clip head start, and VAD's segments."""
    clip = write_clip(utterances(("fr",), per_language=2)[1], tmp_path / "fr2.wav")
    for head_start in (True, False):
        gateway = gateway_factory(
            upstream_urls=[whisper_base_engine.base_url],
            language_detector_model="base",
            language_candidates=list(LANGUAGES),
            head_start={"enabled": head_start},
        )
        result = _client(gateway).audio.transcriptions.create(
            model="w", file=clip.open("rb"), response_format="verbose_json"
        )
        assert result.language == "fr", (head_start, result.text)
        assert not any("\uac00" <= char <= "\ud7a3" for char in result.text), result.text


def test_verbose_json_fields_are_measurements_not_placeholders(base_gateway, clips) -> None:
    client = _client(base_gateway)
    answers = [
        client.audio.transcriptions.create(
            model="w",
            file=clips[language].open("rb"),
            response_format="verbose_json",
            temperature=temperature,
        )
        for language, temperature in (("de", 0.3), ("es", 0.0))
    ]
    first, second = (answer.segments[0] for answer in answers)
    assert (first.temperature, second.temperature) == (0.3, 0.0)
    for field in ("avg_logprob", "compression_ratio", "no_speech_prob", "tokens"):
        assert getattr(first, field) != getattr(second, field), field
    assert first.avg_logprob < 0 and 0 <= first.no_speech_prob < 0.5
    assert len(first.tokens) >= 5


def test_mistral_sdk_reports_the_detected_language_as_verbose_json_does(
    base_gateway, clips
) -> None:
    """Mistral's `language` (and its stream's `transcription.language`) is the language heard,
    not the client's or a default, with the engine's token usage still counted."""
    client = Mistral(api_key="x", server_url=f"{base_gateway.base_url}/mistral")
    clip = clips["de"]
    response = client.audio.transcriptions.complete(
        model="m", file={"file_name": clip.name, "content": clip.read_bytes()}
    )
    assert response.language == "de", response.text
    assert response.usage.completion_tokens > 0
    events = list(
        client.audio.transcriptions.stream(
            model="m", file={"file_name": clip.name, "content": clips["es"].read_bytes()}
        )
    )
    kinds = [e.event for e in events]
    assert kinds[0] == "transcription.language" and events[0].data.audio_language == "es"
    assert kinds[-1] == "transcription.done" and events[-1].data.language == "es"


def test_a_language_the_model_lacks_is_a_400_naming_it(base_gateway, clips) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _client(base_gateway).audio.transcriptions.create(
            model="w", file=clips["de"].open("rb"), language="tlh"
        )
    assert refused.value.body["param"] == "language"


def test_translations_come_back_in_english_in_every_format(base_gateway, clips) -> None:
    client = _client(base_gateway)
    german = clips["de"]
    text = client.audio.translations.create(model="w", file=german.open("rb"))
    assert {"train", "mountains"} <= set(text.text.lower().replace(".", "").split())
    plain = client.audio.translations.create(
        model="w", file=german.open("rb"), response_format="text"
    )
    assert plain.strip() == text.text
    subtitles = client.audio.translations.create(
        model="w", file=german.open("rb"), response_format="srt"
    )
    assert "train" in next(srt.parse(subtitles)).content
    cues = client.audio.translations.create(
        model="w", file=german.open("rb"), response_format="vtt"
    )
    assert "train" in webvtt.from_string(cues)[0].text
    verbose = client.audio.translations.create(
        model="w", file=german.open("rb"), response_format="verbose_json"
    )
    assert verbose.language == "de"
    assert "train" in verbose.text and verbose.segments[0].end > 3


def test_translations_refuse_transcription_only_parameters(base_gateway, clips) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _client(base_gateway).audio.translations.create(
            model="w", file=clips["de"].open("rb"), extra_body={"language": "de"}
        )
    assert refused.value.body["param"] == "language"


class _RecordingProxy:
    """A real HTTP hop on loopback that forwards to the engine and keeps what it was sent."""

    def __init__(self, engine_url: str) -> None:
        self.engine_url = engine_url
        self.calls: list[tuple[str, bytes]] = []
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls.append((request.path, body))
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                f"{self.engine_url}{request.path_qs}",
                data=body,
                headers={"Content-Type": request.headers.get("Content-Type", "")},
            ) as answer,
        ):
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                content_type=answer.content_type,
            )

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> _RecordingProxy:
        self._thread.start()
        self._ready.wait(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)


def test_voxtral_translates_in_instruct_mode_through_chat_completions(
    voxtral_engine, clips
) -> None:
    with _RecordingProxy(voxtral_engine.base_url) as proxy:
        gateway = start_gateway(Settings(upstream_urls=[proxy.url], max_output_tokens=4))
        try:
            result = _client(gateway).audio.translations.create(
                model="w", file=clips["de"].open("rb"), response_format="verbose_json"
            )
        finally:
            gateway.stop()
    chats = [json.loads(body) for path, body in proxy.calls if path == "/v1/chat/completions"]
    assert len(chats) == 1
    content = chats[0]["messages"][0]["content"]
    assert [part["type"] for part in content] == ["input_audio", "text"]
    assert content[0]["input_audio"]["format"] == "wav"
    assert "English" in content[1]["text"]
    assert chats[0]["max_tokens"] == 4
    assert result.task == "translate" and result.segments
    assert not [path for path, _ in proxy.calls if path.startswith("/v1/audio/")]


def test_translation_streams_the_engines_token_deltas(base_gateway, clips) -> None:
    """stream=true on /v1/audio/translations: Whisper's translate task streams token by token."""
    with httpx.stream(
        "POST",
        f"{base_gateway.base_url}/v1/audio/translations",
        files={"file": (clips["de"].name, clips["de"].read_bytes())},
        data={"model": "w", "stream": "true"},
        timeout=600,
        trust_env=False,
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.iter_lines() if line[6:7] == "{"]
    deltas = [e for e in events if e["type"] == "transcript.text.delta"]
    done = events[-1]
    assert done["type"] == "transcript.text.done" and "train" in done["text"]
    assert "".join(d["delta"] for d in deltas) == done["text"]
    assert len(deltas) > 3 * len({d["segment"]["index"] for d in deltas})


def test_cli_translate_streams_english_text(base_gateway, clips) -> None:
    cli = str(Path(sys.executable).parent / "voxtral-gateway")
    done = subprocess.run(
        [cli, "translate", str(clips["de"]), "--server", base_gateway.base_url],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "train" in done.stdout and "segments" in done.stderr  # the streamed progress bar


def test_voxtral_reports_the_language_from_the_gateway_detector(
    voxtral_engine, gateway_factory, clips
) -> None:
    gateway = gateway_factory(
        upstream_urls=[voxtral_engine.base_url],
        max_output_tokens=4,
        language_detector_model="base",
    )
    result = _client(gateway).audio.transcriptions.create(
        model="w", file=clips["es"].open("rb"), response_format="verbose_json"
    )
    assert result.language == "es"
    assert result.segments[0].model_extra["language"] == "es"
