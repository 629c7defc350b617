"""The launcher's process handling, with real child processes on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serve.launcher import GatewayTarget, gateway_env, probe_host
from serve.process import ManagedProcess, ProcessStartError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wait_healthy_returns_once_the_child_answers(tmp_path: Path) -> None:
    port = _free_port()
    server = ManagedProcess.start(
        "http.server",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        env={},
        log_path=tmp_path / "server.log",
    )
    try:
        waited = server.wait_healthy(f"http://127.0.0.1:{port}/", timeout_s=30)
        assert waited < 30
    finally:
        server.stop(grace_s=5)
    assert not server.is_running()


def test_child_that_exits_early_raises_with_its_log(tmp_path: Path) -> None:
    crasher = ManagedProcess.start(
        "crasher",
        [sys.executable, "-c", "import sys; print('model folder missing'); sys.exit(3)"],
        env={},
        log_path=tmp_path / "crasher.log",
    )
    with pytest.raises(ProcessStartError, match="model folder missing"):
        crasher.wait_healthy(f"http://127.0.0.1:{_free_port()}/health", timeout_s=30)


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    # Like vLLM's engine-core worker: a grandchild that ignores SIGTERM.
    script = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = ManagedProcess.start(
        "parent", [sys.executable, "-c", script], env={}, log_path=tmp_path / "p.log"
    )
    deadline = time.monotonic() + 30
    while not parent.log_tail().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    grandchild_pid = int(parent.log_tail().strip())
    parent.stop(grace_s=2)
    result = subprocess.run(["ps", "-o", "stat=", "-p", str(grandchild_pid)], capture_output=True)
    assert result.stdout.strip() in (b"", b"Z")  # gone, or a zombie awaiting its reaper


def test_env_is_added_to_the_child(tmp_path: Path) -> None:
    child = ManagedProcess.start(
        "env",
        [sys.executable, "-c", "import os; print(os.environ['VOXTRAL_PROBE'])"],
        env={"VOXTRAL_PROBE": "from-launcher"},
        log_path=tmp_path / "env.log",
    )
    child.popen.wait(timeout=30)
    assert child.log_tail() == "from-launcher"


def test_gateway_env_points_settings_at_the_engine() -> None:
    env = gateway_env(
        GatewayTarget(upstream_url="http://127.0.0.1:8000", model="tiny-voxtral", api_key="k"),
        host="127.0.0.1",
        port=8001,
    )
    assert json.loads(env["VOXTRAL_UPSTREAM_URLS"]) == ["http://127.0.0.1:8000"]
    assert env["VOXTRAL_UPSTREAM_MODEL"] == "tiny-voxtral"
    assert env["VOXTRAL_UPSTREAM_API_KEY"] == "k"
    assert (env["VOXTRAL_HOST"], env["VOXTRAL_PORT"]) == ("127.0.0.1", "8001")


def test_gateway_env_reads_back_through_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from voxtral_gateway.settings import Settings

    env = gateway_env(
        GatewayTarget(upstream_url="http://127.0.0.1:9", model="m"), host="127.0.0.1", port=9001
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.upstream_urls == ["http://127.0.0.1:9"]
    assert (settings.upstream_model, settings.port) == ("m", 9001)


def test_wildcard_bind_is_probed_on_loopback() -> None:
    assert probe_host("0.0.0.0") == "127.0.0.1"
    assert probe_host("127.0.0.1") == "127.0.0.1"


@pytest.mark.parametrize(
    "name", ["cpu-whisper-tiny-en", "cpu-tiny-voxtral", "voxtral-mini-3b-24gb"]
)
def test_profile_gateway_settings_reach_the_gateway(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """CPU profiles turn the head start off (their engine takes every core, so VAD beside it
    gains nothing); GPU profiles keep the default. Every variable must be a Settings field."""
    from serve.profiles import load_profile
    from voxtral_gateway.settings import Settings

    profile = load_profile(name)
    env = gateway_env(
        GatewayTarget(upstream_url="http://127.0.0.1:9", settings_env=dict(profile.gateway_env)),
        host="127.0.0.1",
        port=9001,
    )
    for key in profile.gateway_env:
        assert key.removeprefix("VOXTRAL_").split("__")[0].lower() in Settings.model_fields, key
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.head_start.enabled is (profile.device == "cuda")
    assert settings.upstream_urls == ["http://127.0.0.1:9"]
    # Admission fits the engine: a CPU engine starts a few requests soon, a GPU about two
    # batches; the gateway's own defaults (512 / 2048) fit neither.
    defaults = Settings.model_fields
    assert settings.max_in_flight_requests != defaults["max_in_flight_requests"].default or (
        settings.max_in_flight_requests == 2 * profile.max_num_seqs
    )
    assert settings.max_pending_segments < defaults["max_pending_segments"].default
    if profile.device == "cpu":
        assert settings.max_in_flight_requests <= 4


@pytest.mark.parametrize(
    ("name", "bridged"),
    [
        ("cpu-tiny-voxtral-realtime", True),
        ("voxtral-mini-4b-realtime", True),
        ("cpu-tiny-voxtral", False),
        ("cpu-whisper-tiny-en", False),
    ],
)
def test_serve_up_bridges_realtime_sessions_to_a_realtime_engine(
    monkeypatch: pytest.MonkeyPatch, name: str, bridged: bool
) -> None:
    """A Voxtral Realtime engine streams over its own WebSocket: the gateway `serve up` starts
    beside it must bridge to it, not transcribe turns over HTTP."""
    from serve.launcher import profile_target
    from serve.profiles import load_profile
    from voxtral_gateway.settings import Settings

    target = profile_target(load_profile(name), "http://127.0.0.1:8000")
    for key, value in gateway_env(target, host="127.0.0.1", port=8001).items():
        monkeypatch.setenv(key, value)
    expected = "ws://127.0.0.1:8000" if bridged else None
    assert Settings().realtime.passthrough_url == expected
