"""`python -m serve gateway` and `python -m serve up` as real processes on loopback."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from serve.process import ManagedProcess
from serve.profiles import REPO_ROOT
from tests.fixtures.audio import AudioClip
from tests.fixtures.engines import RunningEngine, free_loopback_port

pytestmark = pytest.mark.engine

ENGINE_READY_TIMEOUT_S = 600.0


def _serve(args: list[str], log_path: Path) -> ManagedProcess:
    return ManagedProcess.start(
        "python -m serve " + args[0],
        [sys.executable, "-m", "serve", *args],
        env={"PYTHONPATH": str(REPO_ROOT)},
        log_path=log_path,
    )


def _transcribe(base_url: str, clip: AudioClip) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/audio/transcriptions",
        files={"file": (clip.path.name, clip.read_bytes(), "audio/wav")},
        data={"model": "tiny-voxtral"},
        timeout=120,
    )


def _is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_gateway_command_fronts_a_running_engine(
    voxtral_engine: RunningEngine, speech_5s: AudioClip, tmp_path: Path
) -> None:
    port = free_loopback_port()
    gateway = _serve(["gateway", "--upstream", voxtral_engine.base_url, "--port", str(port)],
                     tmp_path / "gateway.log")  # fmt: skip
    try:
        gateway.wait_healthy(f"http://127.0.0.1:{port}/ready", timeout_s=120)
        response = _transcribe(f"http://127.0.0.1:{port}", speech_5s)
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["text"], str)
    finally:
        gateway.stop()


def test_up_runs_engine_and_gateway_and_sigterm_stops_both(
    speech_5s: AudioClip, tmp_path: Path
) -> None:
    engine_port, gateway_port = free_loopback_port(), free_loopback_port()
    up = _serve(
        ["up", "cpu-tiny-voxtral", "--engine-port", str(engine_port), "--port", str(gateway_port)],
        tmp_path / "up.log",
    )
    try:
        up.wait_healthy(f"http://127.0.0.1:{gateway_port}/ready", timeout_s=ENGINE_READY_TIMEOUT_S)
        response = _transcribe(f"http://127.0.0.1:{gateway_port}", speech_5s)
        assert response.status_code == 200, response.text
        # SIGTERM to the launcher alone: it must stop the children it started.
        up.popen.send_signal(signal.SIGTERM)
        assert up.popen.wait(timeout=90) == 0
        assert not _is_listening(gateway_port)
        assert not _is_listening(engine_port)
    finally:
        up.stop()
