"""runpod/supervise.py with real child processes: both halves live and die together."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.engines import free_loopback_port
from tests.runpod_scripts import load_runpod_script
from voxtral_gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]


supervise = load_runpod_script("supervise")

# A child that records SIGTERM in a file, then exits; or ignores it when told to.
_CHILD = """
import signal, sys, time, pathlib
marker = pathlib.Path(sys.argv[1])
def on_term(*_):
    marker.write_text("terminated")
    marker.with_suffix(".stopped_at").write_text(repr(time.time()))
    time.sleep(float(sys.argv[5]))  # a front process draining its requests
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2] == "ignore" else on_term)
marker.with_suffix(".started").write_text("")
for other in sys.argv[6:]:  # wait for these children to be up before the clock starts
    while not pathlib.Path(other).with_suffix(".started").exists():
        time.sleep(0.01)
time.sleep(float(sys.argv[3]))
sys.exit(int(sys.argv[4]))
"""


def _child(
    tmp_path: Path,
    name: str,
    *,
    sleep_s: float,
    exit_code: int = 0,
    on_term: str = "exit",
    drain_s: float = 0.0,
    after: tuple[Path, ...] = (),
):
    marker = tmp_path / f"{name}.marker"
    argv = [
        sys.executable,
        "-c",
        _CHILD,
        str(marker),
        on_term,
        str(sleep_s),
        str(exit_code),
        str(drain_s),
        *map(str, after),
    ]
    return supervise.Program(name, argv, dict(os.environ)), marker


def _wait_started(*markers: Path) -> None:
    deadline = time.monotonic() + 20
    while not all(m.with_suffix(".started").exists() for m in markers):
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.05)


def test_when_one_child_fails_the_other_is_stopped_and_its_code_returned(tmp_path: Path) -> None:
    engine, engine_marker = _child(tmp_path, "engine", sleep_s=60)
    # The front fails 1 s after the engine is up: a SIGTERM before the engine has set its
    # handler would kill it outright and leave no marker.
    front, _ = _child(tmp_path, "front", sleep_s=1.0, exit_code=3, after=(engine_marker,))

    started = time.monotonic()
    code = supervise.Supervisor([engine, front], grace_s=10).run()

    assert code == 3
    assert engine_marker.read_text() == "terminated"
    assert time.monotonic() - started < 30


def test_a_clean_exit_of_one_half_still_fails_the_container(tmp_path: Path) -> None:
    engine, engine_marker = _child(tmp_path, "engine", sleep_s=60)
    front, _ = _child(tmp_path, "front", sleep_s=0.5, exit_code=0, after=(engine_marker,))
    assert supervise.Supervisor([engine, front], grace_s=10).run() == 1


def test_child_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    stubborn, stubborn_marker = _child(tmp_path, "engine", sleep_s=60, on_term="ignore")
    front, front_marker = _child(tmp_path, "front", sleep_s=60)
    supervisor = supervise.Supervisor([stubborn, front], grace_s=1.0)

    def stop_when_started() -> None:
        _wait_started(stubborn_marker, front_marker)
        supervisor.request_stop(signal.SIGTERM)

    threading.Thread(target=stop_when_started, daemon=True).start()
    started = time.monotonic()
    assert supervisor.run() == 0
    elapsed = time.monotonic() - started

    assert supervisor.children["engine"].returncode == -signal.SIGKILL
    assert front_marker.read_text() == "terminated"
    assert elapsed < 20


def test_stop_signal_terminates_both_children_and_exits_cleanly(tmp_path: Path) -> None:
    engine, engine_marker = _child(tmp_path, "engine", sleep_s=60)
    front, front_marker = _child(tmp_path, "front", sleep_s=60, drain_s=1.5)
    supervisor = supervise.Supervisor([engine, front], grace_s=10)

    def stop_when_started() -> None:
        _wait_started(engine_marker, front_marker)
        supervisor.request_stop(signal.SIGTERM)

    threading.Thread(target=stop_when_started, daemon=True).start()
    assert supervisor.run() == 0
    assert engine_marker.read_text() == "terminated"
    assert front_marker.read_text() == "terminated"
    # The engine is asked to stop only after the front process finished draining.
    front_stopped = float(front_marker.with_suffix(".stopped_at").read_text())
    engine_stopped = float(engine_marker.with_suffix(".stopped_at").read_text())
    assert engine_stopped >= front_stopped + 1.5


@pytest.mark.parametrize("mode", ["pod", "serverless", "lb"])
def test_front_process_points_at_the_local_engine(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = supervise.front_program(mode, sys.executable, {"PATH": "/usr/bin"})
    for name, value in program.env.items():
        if name.startswith("VOXTRAL_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.upstream_urls == [f"http://127.0.0.1:{supervise.ENGINE_PORT}"]
    assert settings.host == "0.0.0.0"
    script = program.argv[-1]
    if mode == "pod":
        from voxtral_gateway.cli import build_parser

        assert program.argv[1:3] == ["-m", "voxtral_gateway.cli"]
        assert build_parser().parse_args(program.argv[3:]).command == "serve"
        assert settings.port == supervise.GATEWAY_PORT
    else:
        assert Path(script).is_file()


def test_template_settings_win_over_supervisor_defaults() -> None:
    env = {"VOXTRAL_UPSTREAM_URLS": '["http://10.0.0.5:8000"]', "VOXTRAL_PORT": "9001"}
    program = supervise.front_program("pod", sys.executable, env)
    assert program.env["VOXTRAL_UPSTREAM_URLS"] == '["http://10.0.0.5:8000"]'
    assert program.env["VOXTRAL_PORT"] == "9001"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        supervise.front_program("batch", sys.executable, {})
    with pytest.raises(SystemExit):
        supervise.build_parser().parse_args(["batch"])


def test_engine_runs_exactly_the_serve_profile_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve.profiles import load_profile

    monkeypatch.setenv("VOXTRAL_ENGINE_API_KEY", "engine-secret")
    program = supervise.engine_program("voxtral-mini-3b-24gb", {"PATH": "/usr/bin", "A": "1"})
    profile = load_profile("voxtral-mini-3b-24gb")
    assert program.argv == profile.engine_command(supervise.ENGINE_PORT)
    assert program.env["A"] == "1" and program.env["PATH"] == "/usr/bin"
    # The key reaches vLLM through its environment, never through argv (visible in `ps`).
    assert program.env["VLLM_API_KEY"] == "engine-secret"
    assert "engine-secret" not in " ".join(program.argv)


def test_front_process_gets_the_engine_key(monkeypatch: pytest.MonkeyPatch) -> None:
    program = supervise.front_program("pod", sys.executable, {}, engine_api_key="engine-secret")
    monkeypatch.setenv("VOXTRAL_UPSTREAM_API_KEY", program.env["VOXTRAL_UPSTREAM_API_KEY"])
    assert Settings().upstream_api_key.get_secret_value() == "engine-secret"


def test_unknown_start_arguments_reach_the_front_process() -> None:
    from voxtral_gateway.cli import build_parser as gateway_parser

    args, rest = supervise.build_parser().parse_known_args(
        ["serverless", "--max-concurrent-jobs", "16"]
    )
    assert args.mode == "serverless" and rest == ["--max-concurrent-jobs", "16"]
    handler = load_runpod_script("handler")
    worker_args, _ = handler.build_parser().parse_known_args(rest)
    assert worker_args.max_concurrent_jobs == 16

    pod = supervise.front_program("pod", sys.executable, {}, extra_args=["--port", "9001"])
    assert gateway_parser().parse_args(pod.argv[3:]).port == 9001


def test_engine_port_flag_moves_engine_and_front_together(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve.profiles import load_profile

    engine = supervise.engine_program("voxtral-mini-3b-24gb", {}, port=8123)
    assert engine.argv == load_profile("voxtral-mini-3b-24gb").engine_command(8123)
    front = supervise.front_program("lb", sys.executable, {}, engine_port=8123)
    monkeypatch.setenv("VOXTRAL_UPSTREAM_URLS", front.env["VOXTRAL_UPSTREAM_URLS"])
    assert Settings().upstream_urls == ["http://127.0.0.1:8123"]


def test_front_process_starts_only_once_the_engine_answers_its_ready_url(tmp_path: Path) -> None:
    # An engine that dies while loading: the front process must never have started.
    port = free_loopback_port()
    engine, _ = _child(tmp_path, "engine", sleep_s=1.0, exit_code=5)
    engine = supervise.Program(engine.name, engine.argv, engine.env, ready_url=_url(port))
    front, front_marker = _child(tmp_path, "front", sleep_s=60)
    assert supervise.Supervisor([engine, front], grace_s=5).run() == 5
    assert not front_marker.with_suffix(".started").exists()

    # An engine that answers: the front process starts, and its exit ends the service.
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    engine = supervise.Program("engine", server, ready_url=_url(port), ready_timeout_s=30)
    front, front_marker = _child(tmp_path, "front", sleep_s=0.5, exit_code=3)
    assert supervise.Supervisor([engine, front], grace_s=5).run() == 3
    assert front_marker.with_suffix(".started").exists()


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}/"


def test_front_process_gets_the_profiles_gateway_settings_as_serve_up_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from serve.launcher import GatewayTarget, gateway_env
    from serve.profiles import load_profile

    profile = load_profile("cpu-tiny-voxtral")
    program = supervise.front_program("pod", sys.executable, {}, profile=profile)
    serve_up = gateway_env(
        GatewayTarget(
            upstream_url=f"http://127.0.0.1:{supervise.ENGINE_PORT}",
            model=profile.served_model_name,
            settings_env=dict(profile.gateway_env),
        ),
        host="0.0.0.0",
        port=supervise.GATEWAY_PORT,
    )
    assert program.env == serve_up
    for name, value in program.env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.upstream_model == "tiny-voxtral"
    assert settings.head_start.enabled is False  # the CPU profile's gateway_env
    # A template's own setting still wins over the profile's.
    program = supervise.front_program(
        "pod", sys.executable, {"VOXTRAL_HEAD_START__ENABLED": "true"}, profile=profile
    )
    assert program.env["VOXTRAL_HEAD_START__ENABLED"] == "true"
