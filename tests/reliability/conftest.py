"""An engine of our own (not the session fixture): these tests kill -9 it and start it again."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from serve.launcher import start_engine
from serve.process import ManagedProcess
from serve.profiles import load_profile
from tests.fixtures.engines import ENGINE_READY_TIMEOUT_S, free_loopback_port

PROFILE = "cpu-tiny-voxtral"


@dataclass
class KillableEngine:
    """A tiny-Voxtral vLLM on a fixed loopback port that can be killed and restarted there."""

    port: int
    log_dir: Path
    process: ManagedProcess | None = None
    startup_s: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def start(self) -> float:
        """Start (or restart) on the same port; return seconds until /health answered."""
        log_path = self.log_dir / f"engine-{len(self.startup_s)}.log"
        self.process = start_engine(load_profile(PROFILE), self.port, log_path=log_path)
        seconds = self.process.wait_healthy(
            f"{self.base_url}/health", timeout_s=ENGINE_READY_TIMEOUT_S
        )
        self.startup_s.append(seconds)
        return seconds

    def ensure_running(self) -> None:
        if not self.is_running():
            self.start()

    def kill9(self) -> None:
        """SIGKILL the whole process group (API server and engine core), no goodbye."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_tail(self) -> str:
        return self.process.log_tail() if self.process else ""


@pytest.fixture(scope="module")
def killable_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillableEngine]:
    engine = KillableEngine(free_loopback_port(), tmp_path_factory.mktemp("killable-engine"))
    try:
        yield engine
    finally:
        engine.stop()


_SUCCESS = re.compile(r"^vllm:request_success_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)
_RUNNING = re.compile(r"^vllm:num_requests_running\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def engine_requests_done(base_url: str) -> float:
    """Requests the engine finished (any reason), from its Prometheus /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=10, trust_env=False).text
    return sum(float(v) for v in _SUCCESS.findall(text))


def engine_requests_running(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10, trust_env=False).text
    return sum(float(v) for v in _RUNNING.findall(text))
