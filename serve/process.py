"""Child processes (vLLM engine, gateway) that we start, probe over HTTP and stop by PID.

Each child gets its own session, so its process-group id is its PID: stopping signals that
group, which also reaches the engine-core workers vLLM forks, without touching anything
we did not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

HEALTH_POLL_INTERVAL_S = 0.5


class ProcessStartError(RuntimeError):
    """A child exited, or never answered its health URL in time; carries its log tail."""


class ManagedProcess:
    """A child process writing stdout+stderr to `log_path` (or to ours, when None)."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path | None) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start(
        cls,
        name: str,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path | None,
    ) -> ManagedProcess:
        """Start `cmd` with `env` added to os.environ, logging to `log_path` (truncated), or
        to this process's stdout and stderr (a container's log) when it is None."""
        log_file: IO[bytes] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                list(cmd),
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT if log_file else None,
                start_new_session=True,
            )
        finally:
            if log_file is not None:
                log_file.close()  # the child holds its own descriptor
        return cls(name, popen, log_path)

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, max_lines: int = 60) -> str:
        """Last lines of the child's log ('' if none yet, or it logs to our output)."""
        if self.log_path is None:
            return ""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-max_lines:])

    def wait_healthy(self, url: str, *, timeout_s: float) -> float:
        """Poll `url` until it answers 200; return the seconds waited.

        Raises ProcessStartError, with the log tail, if the child exits first or `timeout_s`
        passes.
        """
        started = time.monotonic()
        deadline = started + timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                if not self.is_running():
                    raise ProcessStartError(
                        f"{self.name} exited with {self.popen.returncode} before {url} "
                        f"answered; log {self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise ProcessStartError(
                        f"{self.name} did not answer {url} within {timeout_s:.0f} s; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(HEALTH_POLL_INTERVAL_S)

    def stop(self, *, grace_s: float = 20.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after `grace_s`; return exit code."""
        if self.is_running():
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace_s)
        # Workers may outlive the leader; the group id is the leader's PID either way.
        self._signal_group(signal.SIGKILL)
        try:
            return self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            return None

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.popen.pid, sig)
