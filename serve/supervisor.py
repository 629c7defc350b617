"""The one process supervisor: an engine and the process in front of it, up and down together.

Used by `python -m serve up` (engine + gateway) and by the RunPod image (runpod/supervise.py:
engine + gateway, serverless worker or load-balancer app). Programs start in order; one with
a `ready_url` must answer it with 200 before the next starts, so the gateway never meets a
cold engine. If any child exits, the rest are stopped and the supervisor returns the first
exit code (1 for a clean exit: half a service is a failure). A stop request (SIGTERM, SIGINT)
stops the children last-started first, so the front process drains its in-flight requests
while the engine they need is still up; each gets `grace_s` before SIGKILL.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from serve.process import ManagedProcess

logger = logging.getLogger("supervise")

_POLL_S = 0.2


@dataclass(frozen=True)
class Program:
    """One supervised child: a name for logs, its argv and the environment it adds."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    """Must answer 200 before the next program starts (None: start the next at once)."""
    ready_timeout_s: float = 900.0
    log_path: Path | None = None
    """Where its output goes; None: the supervisor's own stdout (a container's log)."""


class Supervisor:
    """Start programs, watch them, stop them all together."""

    def __init__(self, programs: Sequence[Program], *, grace_s: float) -> None:
        self.programs = list(programs)
        self.grace_s = grace_s
        self._processes: list[ManagedProcess] = []
        self._stop_requested: int | None = None

    @property
    def children(self) -> dict[str, subprocess.Popen[bytes]]:
        return {process.name: process.popen for process in self._processes}

    def request_stop(self, signum: int, _frame: object = None) -> None:
        logger.info("received signal %d; stopping", signum)
        self._stop_requested = signum

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT request a stop (call from the main thread)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> int:
        try:
            for program in self.programs:
                if self._stop_requested is not None:
                    return 0
                logger.info("starting %s: %s", program.name, " ".join(program.argv))
                # Own process group: a signal for the child reaches its workers too (vLLM forks).
                process = ManagedProcess.start(
                    program.name, program.argv, env=program.env, log_path=program.log_path
                )
                self._processes.append(process)
                if program.ready_url is not None:
                    code = self._wait_ready(process, program)
                    if code is not None:
                        return code
            return self._wait_for_first_exit()
        finally:
            self._stop_all()

    def _first_exit(self) -> int | None:
        for process in self._processes:
            code = process.popen.poll()
            if code is not None:
                logger.error("%s exited with code %d; stopping the rest", process.name, code)
                if process.log_path is not None:
                    logger.error("%s log tail:\n%s", process.name, process.log_tail())
                # A clean exit of one half is still a failure of the whole service.
                return code or 1
        return None

    def _wait_ready(self, process: ManagedProcess, program: Program) -> int | None:
        """None once `program` answers its ready URL; else the supervisor's exit code."""
        assert program.ready_url is not None
        started = time.monotonic()
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while self._stop_requested is None:
                code = self._first_exit()
                if code is not None:
                    return code
                try:
                    if client.get(program.ready_url).status_code == 200:
                        waited = time.monotonic() - started
                        logger.info("%s ready in %.1f s", program.name, waited)
                        return None
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() - started > program.ready_timeout_s:
                    logger.error(
                        "%s did not answer %s within %.0f s; stopping",
                        program.name,
                        program.ready_url,
                        program.ready_timeout_s,
                    )
                    return 1
                time.sleep(_POLL_S)
        return 0

    def _wait_for_first_exit(self) -> int:
        while self._stop_requested is None:
            code = self._first_exit()
            if code is not None:
                return code
            time.sleep(_POLL_S)
        return 0

    def _stop_all(self) -> None:
        # Last started first: the front process drains its in-flight requests while the
        # engine it needs for them is still up; only then does the engine stop.
        for process in reversed(self._processes):
            if process.is_running():
                logger.info("stopping %s", process.name)
            process.stop(grace_s=self.grace_s)
