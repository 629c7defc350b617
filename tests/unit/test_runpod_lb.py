"""runpod/lb.py without an engine: /ping's three answers, ports from RunPod's variables, shutdown.

With an engine behind it (200 and real transcriptions) see tests/engine/test_runpod_lb.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.gateway import free_port
from tests.runpod_scripts import load_runpod_script
from voxtral_gateway.runtime import open_runtime
from voxtral_gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
# Nothing listens on the discard port: an engine that is down (or not up yet).
DEAD_ENGINE = "http://127.0.0.1:9"


lb = load_runpod_script("lb")


def _ping_status(has_been_ready: bool) -> int:
    async def run() -> int:
        settings = Settings(upstream_urls=[DEAD_ENGINE], upstream_connect_timeout_s=2)
        async with open_runtime(settings) as runtime:
            state = lb.PingState()
            state.has_been_ready = has_been_ready
            return (await state.check(runtime)).status_code

    return asyncio.run(run())


def test_ping_says_initializing_while_the_engine_has_never_answered() -> None:
    assert _ping_status(has_been_ready=False) == 204


def test_ping_says_unhealthy_once_a_ready_engine_stops_answering() -> None:
    assert _ping_status(has_been_ready=True) == 503


def test_ping_says_initializing_before_the_gateway_lifespan_ran() -> None:
    assert asyncio.run(lb.PingState().check(None)).status_code == 204


@pytest.fixture
def lb_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int, Path]]:
    port, health_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "VOXTRAL_"))}
    env |= {
        "PORT": str(port),
        "PORT_HEALTH": str(health_port),
        "VOXTRAL_HOST": "127.0.0.1",
        "VOXTRAL_UPSTREAM_URLS": json.dumps([DEAD_ENGINE]),
        "VOXTRAL_API_KEYS": '["sk-test"]',
    }
    log_path = tmp_path / "lb.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "runpod" / "lb.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        for wanted in (port, health_port):
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    httpx.get(f"http://127.0.0.1:{wanted}/ping", timeout=10, trust_env=False)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.2)
        yield process, port, health_port, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_lb_serves_ping_on_both_ports_without_a_key_and_guards_the_api(
    lb_process: tuple[subprocess.Popen[bytes], int, int, Path],
) -> None:
    _process, port, health_port, _log = lb_process
    with httpx.Client(timeout=30, trust_env=False) as client:
        assert client.get(f"http://127.0.0.1:{health_port}/ping").status_code == 204
        assert client.get(f"http://127.0.0.1:{port}/ping").status_code == 204
        assert client.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
        # The health port serves only the probe, never the API.
        assert client.get(f"http://127.0.0.1:{health_port}/v1/models").status_code == 404


def test_sigterm_stops_both_servers(
    lb_process: tuple[subprocess.Popen[bytes], int, int, Path],
) -> None:
    process, _port, _health_port, log = lb_process
    process.terminate()
    try:
        # uvicorn re-raises the signal it caught once shutdown is done, hence -SIGTERM.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM), log.read_text()
    except subprocess.TimeoutExpired:
        pytest.fail("lb.py kept running after SIGTERM:\n" + log.read_text())
    output = log.read_text()
    assert output.count("Finished server process") == 2, output
    assert "Application shutdown complete" in output
