"""runpod/supervise.py in pod mode with a real CPU engine: up, serving, and down together.

This is the container's process model without the container: the supervisor starts vLLM from
a serve/ profile plus the gateway, and RunPod's stop (SIGTERM) must take both down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.gateway import free_port

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
PROFILE = "cpu-whisper-tiny-en"


def _is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int, Path]]:
    engine_port, gateway_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "VOXTRAL_"))}
    env |= {"VOXTRAL_HOST": "127.0.0.1", "VOXTRAL_PORT": str(gateway_port)}
    log_path = tmp_path / "supervise.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "runpod" / "supervise.py"),
                "pod",
                "--profile",
                PROFILE,
                "--engine-port",
                str(engine_port),
                "--grace-s",
                "60",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, engine_port, gateway_port, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_pod_serves_transcriptions_then_stops_both_halves_on_sigterm(
    pod: tuple[subprocess.Popen[bytes], int, int, Path], tmp_path: Path
) -> None:
    process, engine_port, gateway_port, log_path = pod
    gateway = f"http://127.0.0.1:{gateway_port}"
    deadline = time.monotonic() + 400
    while True:
        assert process.poll() is None, log_path.read_text()
        try:
            if httpx.get(f"{gateway}/ready", timeout=30, trust_env=False).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log_path.read_text()[-5000:]
        time.sleep(1)

    wav = tmp_path / "pod.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Testing the pod image."], check=True)
    response = httpx.post(
        f"{gateway}/v1/audio/transcriptions",
        files={"file": ("pod.wav", wav.read_bytes(), "audio/wav")},
        data={"model": "whisper", "response_format": "json"},
        timeout=300,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"].strip()

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 0, log_path.read_text()[-5000:]
    assert not _is_listening(engine_port), "vLLM outlived the supervisor"
    assert not _is_listening(gateway_port), "the gateway outlived the supervisor"
