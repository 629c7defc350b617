"""The RunPod serverless worker against a real engine, through the runpod SDK's local server.

`python runpod/handler.py --rp_serve_api` serves /run, /runsync, /stream/{id} exactly as the SDK
does for local testing. Every answer is compared with the gateway's own answer for the same
audio and settings: the worker must run the same pipeline, not a look-alike.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.engines import RunningEngine
from tests.fixtures.gateway import RunningGateway, engine_settings_env, free_port, start_gateway
from voxtral_gateway.settings import Settings

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet again on Monday morning at the station.",
]
# Short segments so one clip gives several, and streaming order is visible.
SEGMENT_MAX_S = 4.0


@pytest.fixture(scope="module")
def speech_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Three espeak-ng sentences with a second of silence between them, as 16 kHz mono WAV."""
    folder = tmp_path_factory.mktemp("runpod-clip")
    parts: list[str] = []
    for index, sentence in enumerate(SENTENCES):
        raw = folder / f"s{index}.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), sentence], check=True)
        parts.append(str(raw))
    silence = folder / "silence.wav"
    subprocess.run(
        ["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", str(silence), "trim", "0", "1.0"],
        check=True,
    )
    joined = folder / "clip.wav"
    sequence = [parts[0], str(silence), parts[1], str(silence), parts[2]]
    subprocess.run(["sox", *sequence, "-r", "16000", "-c", "1", str(joined)], check=True)
    return joined.read_bytes()


def _settings_env(engine: RunningEngine) -> dict[str, str]:
    """The engine profile's gateway settings (as `serve up` sets them), then this test's."""
    return engine_settings_env(engine) | {
        "VOXTRAL_VAD__SEGMENT_MAX_S": str(SEGMENT_MAX_S),
        # The loopback audio server below: plain http, 127.0.0.0/8, an ephemeral port.
        "VOXTRAL_FETCH__ALLOW_HTTP": "true",
        "VOXTRAL_FETCH__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "VOXTRAL_FETCH__ALLOWED_PORTS": "[]",
    }


@pytest.fixture(scope="module")
def gateway(whisper_engine: Any) -> Iterator[RunningGateway]:
    """A gateway with exactly the worker's settings, read from the same variables."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _settings_env(whisper_engine).items():
            patch.setenv(name, value)
        settings = Settings()
    running = start_gateway(settings)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def worker_url(whisper_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "VOXTRAL_"))}
    env |= _settings_env(whisper_engine)
    log_path = tmp_path_factory.mktemp("runpod-worker") / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "runpod" / "handler.py"),
                "--engine-wait-s",
                "300",
                "--rp_serve_api",
                "--rp_api_host",
                "127.0.0.1",
                "--rp_api_port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                pytest.fail(f"worker exited {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/openapi.json", timeout=2, trust_env=False).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"worker did not start:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def audio_url(speech_clip: bytes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The clip on a loopback HTTP server (the only address these tests reach)."""
    folder = tmp_path_factory.mktemp("runpod-audio-server")
    (folder / "clip.wav").write_bytes(speech_clip)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/clip.wav"
    server.shutdown()
    server.server_close()


def _gateway_answer(gateway: RunningGateway, clip: bytes, **fields: str) -> httpx.Response:
    response = httpx.post(
        f"{gateway.base_url}/v1/audio/transcriptions",
        files={"file": ("clip.wav", clip, "audio/wav")},
        data={"model": "whisper", "temperature": "0", **fields},
        timeout=600,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    return response


def _logprobs(verbose: dict[str, Any]) -> list[float]:
    """Pop each segment's `avg_logprob` (a measured float) out of a verbose_json body."""
    return [segment.pop("avg_logprob") for segment in verbose["segments"]]


def _runsync(worker_url: str, job_input: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{worker_url}/runsync", json={"input": job_input}, timeout=600, trust_env=False
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_runsync_base64_returns_the_gateway_transcript(
    worker_url: str, gateway: RunningGateway, speech_clip: bytes
) -> None:
    expected = _gateway_answer(gateway, speech_clip, response_format="json").json()
    job = _runsync(
        worker_url,
        {
            "audio_base64": base64.b64encode(speech_clip).decode(),
            "model": "whisper",
            "response_format": "json",
            "temperature": 0,
        },
    )
    assert job["status"] == "COMPLETED", job
    assert job["output"] == [expected]
    assert expected["text"].strip()


def test_runsync_loopback_url_returns_the_gateway_transcript(
    worker_url: str, gateway: RunningGateway, speech_clip: bytes, audio_url: str
) -> None:
    expected = _gateway_answer(gateway, speech_clip, response_format="verbose_json").json()
    job = _runsync(
        worker_url,
        {"audio_url": audio_url, "response_format": "verbose_json", "temperature": 0},
    )
    assert job["status"] == "COMPLETED", job
    (output,) = job["output"]
    # The CPU engine's log probabilities differ in the third decimal from call to call (its
    # batching is not bit-exact); everything else must be identical.
    got, want = _logprobs(output), _logprobs(expected)
    assert got == pytest.approx(want, abs=0.01) and len(want) == len(expected["segments"])
    assert output == expected
    assert len(expected["segments"]) >= 2


def test_runsync_subtitle_formats_match_the_gateway_byte_for_byte(
    worker_url: str, gateway: RunningGateway, speech_clip: bytes, audio_url: str
) -> None:
    expected = _gateway_answer(gateway, speech_clip, response_format="srt").text
    job = _runsync(worker_url, {"audio_url": audio_url, "response_format": "srt"})
    assert job["output"] == [expected]


def test_runsync_word_timestamps_match_the_gateway(
    worker_url: str, gateway: RunningGateway, speech_clip: bytes, audio_url: str
) -> None:
    """Word timing lives in the service, so the worker times words exactly as the route does."""
    expected = _gateway_answer(
        gateway,
        speech_clip,
        response_format="verbose_json",
        **{"timestamp_granularities[]": "word"},
    ).json()
    job = _runsync(
        worker_url,
        {
            "audio_url": audio_url,
            "response_format": "verbose_json",
            "timestamp_granularities": ["word"],
            "temperature": 0,
        },
    )
    assert job["status"] == "COMPLETED", job
    assert job["output"] == [expected]
    words = expected["words"]
    assert len(words) >= 10 and " ".join(w["word"] for w in words) == expected["text"]
    assert "segments" not in expected  # only `word` was asked for


def test_stream_yields_segments_in_file_order_then_the_whole_text(
    worker_url: str, gateway: RunningGateway, speech_clip: bytes, audio_url: str
) -> None:
    expected_text = _gateway_answer(gateway, speech_clip, response_format="json").json()["text"]
    submitted = httpx.post(
        f"{worker_url}/run",
        json={"input": {"audio_url": audio_url, "stream": True, "temperature": 0}},
        timeout=60,
        trust_env=False,
    ).json()
    assert submitted["status"] == "IN_PROGRESS"

    streamed = httpx.post(
        f"{worker_url}/stream/{submitted['id']}", timeout=600, trust_env=False
    ).json()

    assert streamed["status"] == "COMPLETED", streamed
    items = [chunk["output"] for chunk in streamed["stream"]]
    deltas, done = items[:-1], items[-1]
    assert [d["type"] for d in deltas] == ["transcript.text.delta"] * len(deltas)
    assert done["type"] == "transcript.text.done"
    indexes = [d["segment"]["index"] for d in deltas]
    assert len(indexes) >= 2 and indexes == sorted(indexes)
    assert len(deltas) > len(set(indexes))  # the engine's token deltas, not one per segment
    starts = [d["segment"]["start"] for d in deltas]
    assert starts == sorted(starts)
    assert "".join(d["delta"] for d in deltas) == done["text"] == expected_text


def test_mistral_dialect_job_returns_the_mistral_route_answer(
    worker_url: str, gateway: RunningGateway, speech_clip: bytes, audio_url: str
) -> None:
    """`"dialect": "mistral"` runs Mistral's request through the same dialect code as the
    gateway's /mistral route: the same body, and the same events in the same order."""
    expected = httpx.post(
        f"{gateway.base_url}/mistral/v1/audio/transcriptions",
        files={"file": ("clip.wav", speech_clip, "audio/wav")},
        data={"model": "voxtral-mini-latest", "timestamp_granularities": "segment"},
        timeout=600,
        trust_env=False,
    )
    assert expected.status_code == 200, expected.text
    job = _runsync(
        worker_url,
        {
            "dialect": "mistral",
            "audio_url": audio_url,
            "model": "voxtral-mini-latest",
            "timestamp_granularities": ["segment"],
        },
    )
    assert job["status"] == "COMPLETED", job
    assert job["output"] == [expected.json()]
    assert expected.json()["usage"]["completion_tokens"] > 0

    submitted = httpx.post(
        f"{worker_url}/run",
        json={
            "input": {
                "dialect": "mistral",
                "audio_base64": base64.b64encode(speech_clip).decode(),
                "model": "voxtral-mini-latest",
                "stream": True,
            }
        },
        timeout=60,
        trust_env=False,
    ).json()
    streamed = httpx.post(
        f"{worker_url}/stream/{submitted['id']}", timeout=600, trust_env=False
    ).json()
    assert streamed["status"] == "COMPLETED", streamed
    items = [chunk["output"] for chunk in streamed["stream"]]
    assert items[-1]["type"] == "transcription.done"
    deltas = [i["text"] for i in items if i["type"] == "transcription.text.delta"]
    assert "".join(deltas) == items[-1]["text"] == expected.json()["text"]
    # The engine's token deltas: VAD cuts the clip into at most one segment per sentence.
    assert len(deltas) > 3 * len(SENTENCES)

    refused = _runsync(worker_url, {"dialect": "klingon", "audio_url": audio_url})
    (error,) = refused["output"]
    assert error["param"] == "dialect" and error["error"]
