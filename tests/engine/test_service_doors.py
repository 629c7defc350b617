"""Every front door hands its parameters to the one TranscriptionService, on the real engine.

Whisper tiny.en refuses every language but English and names the one it got, so a door that
dropped, defaulted or rewrote `language` would get a transcript instead of that refusal. The
HTTP route, the RunPod worker and the realtime socket refuse it before the engine, through the
service's one check (`checked_language`, the profile's `VOXTRAL_LANGUAGES=["en"]`); the socket
answers the session update with an `error` event. The same clip with `language="en"` is
transcribed through each door.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.fixtures.audio import AudioClip
from tests.fixtures.engines import RunningEngine
from tests.fixtures.gateway import engine_settings
from tests.realtime.conftest import pcm16_chunks, read_clip
from tests.runpod_scripts import load_runpod_script

pytestmark = pytest.mark.engine

handler = load_runpod_script("handler")
GATEWAY_REFUSAL = "Language 'fr' is not supported by the served model"  # the service's
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"


def _http(base_url: str, clip: AudioClip, language: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/audio/transcriptions",
        files={"file": ("clip.wav", clip.read_bytes(), "audio/wav")},
        data={"language": language},
        timeout=120,
        trust_env=False,
    )


def _runpod(engine: RunningEngine, job_input: dict[str, Any]) -> list[Any]:
    async def run() -> list[Any]:
        worker = handler.Worker(engine_settings(engine))
        try:
            return [item async for item in worker.handle({"id": "j", "input": job_input})]
        finally:
            await worker.close()

    return asyncio.run(run())


def _realtime(base_url: str, clip: AudioClip, language: str) -> dict[str, Any]:
    """Manual commit of the clip; the item's `completed` or `failed` event, or the `error`
    event that refused the session update."""
    url = base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    with connect(url, max_size=None) as socket:
        session = {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"language": language},
                    "turn_detection": None,
                }
            },
        }
        socket.send(json.dumps({"type": "session.update", "session": session}))
        assert json.loads(socket.recv(timeout=60))["type"] == "session.created"
        answer = json.loads(socket.recv(timeout=60))
        if answer["type"] == "error":
            return answer
        for chunk in pcm16_chunks(read_clip(clip.path), 500):
            socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        socket.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while True:
            event = json.loads(socket.recv(timeout=60))
            assert event["type"] != "error", event
            if event["type"] in (COMPLETED, FAILED):
                return event


def test_language_reaches_the_engine_from_the_http_route(whisper_gateway, sentence_clips):
    clip = sentence_clips[1]
    refused = _http(whisper_gateway.base_url, clip, "fr")
    assert refused.status_code == 400
    assert GATEWAY_REFUSAL in refused.json()["error"]["message"]
    assert refused.json()["error"]["code"] == "unsupported_language"
    assert "office" in _http(whisper_gateway.base_url, clip, "en").json()["text"].lower()


def test_language_reaches_the_engine_from_the_runpod_worker(whisper_engine, sentence_clips):
    clip = sentence_clips[1]
    audio = base64.b64encode(clip.read_bytes()).decode()
    (refused,) = _runpod(whisper_engine, {"audio_base64": audio, "language": "fr"})
    assert GATEWAY_REFUSAL in refused["error"] and refused["code"] == "unsupported_language"
    # `audio_url` resolves as the HTTP route's `file_url` does: a data URL is decoded inline.
    data_url = f"data:audio/wav;base64,{audio}"
    (done,) = _runpod(whisper_engine, {"audio_url": data_url, "language": "en"})
    assert "office" in done["text"].lower()


def test_language_reaches_the_engine_from_the_realtime_socket(whisper_gateway, sentence_clips):
    clip = sentence_clips[1]
    refused = _realtime(whisper_gateway.base_url, clip, "fr")
    assert refused["type"] == "error"
    assert GATEWAY_REFUSAL in refused["error"]["message"]
    assert refused["error"]["code"] == "unsupported_language"
    completed = _realtime(whisper_gateway.base_url, clip, "en")
    assert completed["type"] == COMPLETED
    assert "office" in completed["transcript"].lower()
