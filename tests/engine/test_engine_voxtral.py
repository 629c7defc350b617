"""The tiny random Voxtral served by the real vLLM CPU engine (profile cpu-tiny-voxtral).

Its text is gibberish by construction and it never emits `</s>`, so every request caps
output tokens; these tests check the serving path (load, audio decode, response schema),
not transcript quality.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.fixtures.audio import AudioClip
from tests.fixtures.engines import RunningEngine

pytestmark = pytest.mark.engine

TOKEN_CAP = 16


def _transcribe(engine: RunningEngine, clip: AudioClip, **form: str) -> httpx.Response:
    return httpx.post(
        f"{engine.openai_base_url}/audio/transcriptions",
        files={"file": (clip.path.name, clip.read_bytes(), "audio/wav")},
        data={"model": engine.model, "max_completion_tokens": str(TOKEN_CAP), **form},
        timeout=120,
    )


def test_engine_lists_the_served_model_name(voxtral_engine: RunningEngine) -> None:
    models = httpx.get(f"{voxtral_engine.openai_base_url}/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == ["tiny-voxtral"]


def test_transcription_through_openai_sdk_parses_text_and_usage(
    voxtral_engine: RunningEngine, speech_5s: AudioClip
) -> None:
    client = openai.OpenAI(base_url=voxtral_engine.openai_base_url, api_key="unused")
    with speech_5s.path.open("rb") as audio:
        result = client.audio.transcriptions.create(
            model=voxtral_engine.model,
            file=audio,
            extra_body={"max_completion_tokens": TOKEN_CAP},
        )
    # The SDK parsed the engine's answer: its text (noise) and the usage vLLM computed from
    # the decoded audio. Not that the text is non-empty: twice in clean-clone CI runs this
    # request got '' from the CPU engine mid-suite, once with a fixture that cannot pick a
    # token that shows no text (serve/fixtures/voxtral.py), never when re-run alone.
    assert isinstance(result.text, str)
    assert result.usage is not None and result.usage.seconds == pytest.approx(5.0)


def test_response_schema_has_text_and_duration_usage(
    voxtral_engine: RunningEngine, speech_5s: AudioClip
) -> None:
    response = _transcribe(voxtral_engine, speech_5s)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"text", "usage"}
    assert body["usage"] == {"type": "duration", "seconds": 5}


@pytest.mark.parametrize("clip_name", ["speech_8khz", "speech_stereo"])
def test_resampling_and_downmix_need_the_audio_extras(
    voxtral_engine: RunningEngine, clip_name: str, request: pytest.FixtureRequest
) -> None:
    # Without PyAV/soxr in the engine venv, vLLM answers 8 kHz input with a 400.
    clip: AudioClip = request.getfixturevalue(clip_name)
    response = _transcribe(voxtral_engine, clip)
    assert response.status_code == 200, response.text


def test_sixty_second_clip_fits_the_profile_context(
    voxtral_engine: RunningEngine, speech_60s: AudioClip
) -> None:
    # 60 s = 750 audio tokens: needs max_model_len above vLLM's 30 s padding of two windows.
    response = _transcribe(voxtral_engine, speech_60s)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["seconds"] == 60
