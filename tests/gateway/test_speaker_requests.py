"""Requests for speakers that the gateway must refuse before any engine call (engine down)."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf

from bench.dialogue import VOICES, synthesize_voice

DOWN_ENGINE = "http://127.0.0.1:9"  # closed port: any engine call would be a 503, not a 400


def _wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16_000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _data_url(samples: np.ndarray) -> str:
    return "data:audio/wav;base64," + base64.b64encode(_wav(samples)).decode()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synthesize_voice("The quick brown fox jumps over the lazy dog.", VOICES["bob"])


def _post(gateway: str, audio: np.ndarray, fields: list[tuple[str, str]]) -> httpx.Response:
    data: dict[str, list[str]] = {"model": ["m"]}
    for key, value in fields:
        data.setdefault(key, []).append(value)
    return httpx.post(
        f"{gateway}/v1/audio/transcriptions",
        files={"file": ("a.wav", _wav(audio), "audio/wav")},
        data=data,
        timeout=60,
    )


def _error(response: httpx.Response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_speakers_without_an_encoder_is_a_400_saying_how_to_enable_them(
    gateway_factory, speech
) -> None:
    gateway = gateway_factory(upstream_urls=[DOWN_ENGINE], speakers={"backend": "off"})
    error = _error(_post(gateway.base_url, speech, [("response_format", "diarized_json")]))
    assert error["code"] == "speakers_unavailable"
    assert "voxtral-gateway[speakers]" in error["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ([("known_speaker_names[]", "a")], "known_speaker_names"),
        (
            [
                ("known_speaker_names[]", "a"),
                ("known_speaker_references[]", "https://x.test/a.wav"),
            ],
            "known_speaker_references",
        ),
        (
            [("known_speaker_names[]", "a"), ("known_speaker_references[]", "/etc/passwd")],
            "known_speaker_references",
        ),
        ([("min_speakers", "3"), ("max_speakers", "2")], None),
        ([("max_speakers", "0")], "max_speakers"),
        ([("speakers", "false"), ("response_format", "diarized_json")], None),
    ],
)
def test_bad_speaker_parameters_are_400s(gateway_factory, speech, fields, param) -> None:
    gateway = gateway_factory(upstream_urls=[DOWN_ENGINE])
    error = _error(_post(gateway.base_url, speech, fields))
    assert not error["message"].startswith("Unknown parameter")
    if param:
        assert error["param"] == param


def test_reference_clips_are_bounded_in_count_and_duration(gateway_factory, speech) -> None:
    gateway = gateway_factory(
        upstream_urls=[DOWN_ENGINE],
        speakers={"max_references": 1, "reference_max_s": 2.0, "reference_min_s": 1.0},
    )
    clip = _data_url(speech[:24_000])
    two = [("known_speaker_names[]", "a"), ("known_speaker_names[]", "b")]
    two += [("known_speaker_references[]", clip)] * 2
    assert _error(_post(gateway.base_url, speech, two))["param"] == "known_speaker_references"
    too_long = [("known_speaker_names[]", "a"), ("known_speaker_references[]", _data_url(speech))]
    _error(_post(gateway.base_url, speech, too_long), 413)
    too_short = [
        ("known_speaker_names[]", "a"),
        ("known_speaker_references[]", _data_url(speech[:8_000])),
    ]
    assert _error(_post(gateway.base_url, speech, too_short))["param"] == "known_speaker_references"


def test_speaker_names_cannot_carry_markup(gateway_factory, speech) -> None:
    gateway = gateway_factory(upstream_urls=[DOWN_ENGINE])
    fields = [
        ("known_speaker_names[]", "<b>x"),
        ("known_speaker_references[]", _data_url(speech[:24_000])),
    ]
    assert _error(_post(gateway.base_url, speech, fields))["param"].startswith(
        "known_speaker_names"
    )


def _post_mistral(gateway: str, audio: np.ndarray, fields: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{gateway}/mistral/v1/audio/transcriptions",
        files={"file": ("a.wav", _wav(audio), "audio/wav")},
        data={"model": "m", **fields},
        timeout=60,
    )


def test_mistral_diarize_refusals_name_mistrals_parameters(gateway_factory, speech) -> None:
    """Mistral's `diarize` / `speaker_references` get the same checks as OpenAI's fields."""
    off = gateway_factory(upstream_urls=[DOWN_ENGINE], speakers={"backend": "off"})
    unavailable = _post_mistral(off.base_url, speech, {"diarize": "true"})
    assert unavailable.status_code == 400, unavailable.text
    assert (unavailable.json()["param"], unavailable.json()["code"]) == (
        "diarize",
        "speakers_unavailable",
    )
    gateway = gateway_factory(upstream_urls=[DOWN_ENGINE], speakers={"max_references": 1})
    clip = _data_url(speech[:24_000])
    for references in (
        {"ann": "https://x.test/a.wav"},  # never fetched: data URLs only
        {"ann": clip, "bob": clip},  # past max_references
        {"<b>": clip},  # names end up in labels: no markup
    ):
        response = _post_mistral(
            gateway.base_url,
            speech,
            {"diarize": "true", "speaker_references": json.dumps(references)},
        )
        assert response.status_code == 400, response.text
        assert response.json()["param"].startswith("speaker_references")
