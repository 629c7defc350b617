"""runpod/handler.py without an engine: job-input validation and the error shape RunPod reads.

The end-to-end behaviour (same transcript as the gateway, streaming order) is in
tests/engine/test_runpod_serverless.py against a real engine.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
from pathlib import Path
from typing import Any

import pytest

from tests.runpod_scripts import load_runpod_script
from voxtral_gateway.errors import AudioLimitError, InvalidRequestError
from voxtral_gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]


handler = load_runpod_script("handler")


def _collect(worker: Any, job_input: Any) -> list[Any]:
    async def run() -> list[Any]:
        try:
            return [item async for item in worker.handle({"id": "job-1", "input": job_input})]
        finally:
            await worker.close()

    return asyncio.run(run())


def test_handler_is_an_async_generator_so_runpod_streams_it() -> None:
    worker = handler.Worker(Settings())
    assert inspect.isasyncgenfunction(worker.handle)


def test_job_keys_map_onto_the_gateway_request() -> None:
    request = handler.parse_job_input(
        {
            "audio_url": "https://example.org/a.wav",
            "model": "voxtral",
            "language": "en",
            "prompt": "names: Ada",
            "response_format": "verbose_json",
            "temperature": 0.2,
        }
    )
    assert request.file_url == "https://example.org/a.wav"
    assert request.audio is None
    assert (request.language, request.prompt, request.temperature) == ("en", "names: Ada", 0.2)
    assert request.response_format == "verbose_json"

    inline = handler.parse_job_input({"audio_base64": "UklGRg==", "stream": True})
    assert inline.audio == "UklGRg==" and inline.file_url is None and inline.stream


@pytest.mark.parametrize(
    ("job_input", "param"),
    [
        ({}, "audio_url"),
        ({"audio_url": "https://example.org/a.wav", "audio_base64": "UklGRg=="}, "audio_url"),
        ({"file_url": "https://example.org/a.wav"}, "file_url"),
        ({"audio_base64": "UklGRg==", "colour": "red"}, "colour"),
        ({"audio_base64": "UklGRg==", "response_format": "docx"}, "response_format"),
        ({"audio_base64": "UklGRg==", "temperature": 3}, "temperature"),
        ({"audio_base64": 12}, "audio_base64"),
    ],
)
def test_bad_job_input_names_the_parameter(job_input: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        handler.parse_job_input(job_input)
    assert caught.value.param == param


def test_job_input_must_be_an_object() -> None:
    with pytest.raises(InvalidRequestError):
        handler.parse_job_input(["audio_url", "https://example.org/a.wav"])


def test_stream_only_with_formats_that_can_stream() -> None:
    with pytest.raises(InvalidRequestError, match="stream"):
        handler.parse_job_input(
            {"audio_base64": "UklGRg==", "stream": True, "response_format": "srt"}
        )


def test_inline_audio_over_runpod_payload_cap_is_refused_with_the_way_out() -> None:
    too_big = "A" * (handler.RUNSYNC_PAYLOAD_LIMIT_BYTES + 4)
    with pytest.raises(AudioLimitError) as caught:
        handler.parse_job_input({"audio_base64": too_big})
    message = caught.value.message
    assert "10 MB on /run" in message and "20 MB on /runsync" in message
    assert "audio_url" in message
    assert caught.value.param == "audio_base64"

    just_under = "A" * handler.RUNSYNC_PAYLOAD_LIMIT_BYTES
    assert handler.parse_job_input({"audio_base64": just_under}).audio == just_under


def test_failure_is_one_error_item_runpod_marks_failed() -> None:
    outputs = _collect(handler.Worker(Settings()), {"audio_base64": "UklGRg==", "colour": "red"})
    assert outputs == [
        {
            "error": "Unknown parameter 'colour'.",
            "type": "invalid_request_error",
            "code": "invalid_parameter",
            "param": "colour",
        }
    ]


def test_undecodable_inline_audio_is_reported_against_audio_base64() -> None:
    outputs = _collect(handler.Worker(Settings()), {"audio_base64": "!!not base64!!"})
    assert len(outputs) == 1
    assert outputs[0]["param"] == "audio_base64"
    assert outputs[0]["type"] == "invalid_request_error"


def test_plain_http_url_is_refused_by_default_before_any_connection() -> None:
    # Default fetch policy: https only, public addresses only. Port 9 on loopback: discard.
    outputs = _collect(handler.Worker(Settings()), {"audio_url": "http://127.0.0.1:9/a.wav"})
    assert len(outputs) == 1
    assert outputs[0]["code"] == "url_not_allowed"
    assert outputs[0]["param"] == "audio_url"


def test_valid_wav_with_no_engine_fails_as_upstream_unavailable(tmp_path: Path) -> None:
    import numpy as np
    import soundfile

    wav_path = tmp_path / "tone.wav"
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(16_000) / 16_000).astype(np.float32)
    soundfile.write(wav_path, tone, 16_000)
    clip = base64.b64encode(wav_path.read_bytes()).decode()
    # A port nothing listens on: the engine is down, the job must fail, not hang or crash.
    settings = Settings(
        upstream_urls=["http://127.0.0.1:9"], vad={"enabled": False}, segment_timeout_s=5
    )
    outputs = _collect(handler.Worker(settings), {"audio_base64": clip})
    assert len(outputs) == 1
    assert outputs[0]["type"] == "upstream_error"
    assert outputs[0]["error"]
