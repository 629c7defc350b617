"""runpod/lb.py in front of a real engine: /ping turns 200 and the API is the gateway's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.gateway import (
    RunningGateway,
    engine_settings,
    engine_settings_env,
    free_port,
    start_gateway,
)

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lb_urls(
    whisper_engine: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(api base URL, health base URL) of lb.py on two loopback ports, as RunPod may set them."""
    port, health_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "VOXTRAL_"))}
    env |= engine_settings_env(whisper_engine) | {
        "PORT": str(port),
        "PORT_HEALTH": str(health_port),
        "VOXTRAL_HOST": "127.0.0.1",
    }
    log_path = tmp_path_factory.mktemp("runpod-lb") / "lb.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "runpod" / "lb.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{health_port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def gateway(whisper_engine: Any) -> Iterator[RunningGateway]:
    running = start_gateway(engine_settings(whisper_engine))
    yield running
    running.stop()


def _wait_for_ping(url: str, timeout_s: float = 300) -> list[int]:
    """Poll /ping like RunPod does until 200; return every status seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{url}/ping", timeout=30, trust_env=False).status_code
        except httpx.TransportError:
            status = 0  # not listening yet
        seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.5)
    pytest.fail(f"/ping never answered 200: {seen[-10:]}")


def test_ping_turns_healthy_on_both_ports_with_a_live_engine(lb_urls: tuple[str, str]) -> None:
    api_url, health_url = lb_urls
    for url in (health_url, api_url):
        seen = _wait_for_ping(url)
        # Before 200 only "not listening" or "initializing"; never "unhealthy".
        assert set(seen[:-1]) <= {0, 204}, seen


def test_transcription_through_the_lb_worker_is_the_gateway_answer(
    lb_urls: tuple[str, str], gateway: RunningGateway, tmp_path: Path
) -> None:
    api_url, _ = lb_urls
    _wait_for_ping(api_url)
    wav = tmp_path / "hello.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(wav), "Good morning. The meeting starts at nine."], check=True
    )
    clip = wav.read_bytes()

    answers = []
    for base_url in (api_url, gateway.base_url):
        response = httpx.post(
            f"{base_url}/v1/audio/transcriptions",
            files={"file": ("hello.wav", clip, "audio/wav")},
            data={"model": "whisper", "response_format": "verbose_json", "temperature": "0"},
            timeout=600,
            trust_env=False,
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert answers[0] == answers[1]
    assert answers[0]["text"].strip()
