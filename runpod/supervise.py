"""Tiny process supervisor for the RunPod image: the vLLM engine plus one front process.

    python runpod/supervise.py pod          engine :8000 + gateway :8001 (a RunPod Pod)
    python runpod/supervise.py serverless   engine + runpod/handler.py (queue-based endpoint)
    python runpod/supervise.py lb           engine + runpod/lb.py (load-balancing endpoint)

The engine command comes from a serve/ profile (`--profile`, default from VOXTRAL_PROFILE).
If either process exits, the other is stopped and the supervisor exits with the first exit
code, so RunPod restarts the container instead of leaving half a service running. SIGTERM
(RunPod's stop) goes to the front process first, so the gateway can drain its in-flight
requests against a live engine, then to the engine; each gets `--grace-s` before SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("supervise")

RUNPOD_DIR = Path(__file__).resolve().parent
ENGINE_PORT = 8000
GATEWAY_PORT = 8001
_POLL_S = 0.2


@dataclass(frozen=True)
class Program:
    """One supervised child: a name for logs, its argv and its full environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def front_program(
    mode: str,
    python: str,
    base_env: Mapping[str, str],
    *,
    engine_port: int = ENGINE_PORT,
    engine_api_key: str | None = None,
    extra_args: Sequence[str] = (),
) -> Program:
    """The process that faces clients, pointed at the local engine (with its key, if any)."""
    env = dict(base_env)
    if engine_api_key:
        env.setdefault("VOXTRAL_UPSTREAM_API_KEY", engine_api_key)
    # Settings defaults, unless the template overrides them.
    env.setdefault("VOXTRAL_UPSTREAM_URLS", f'["http://127.0.0.1:{engine_port}"]')
    # RunPod reaches the container from outside: listen on all interfaces.
    env.setdefault("VOXTRAL_HOST", "0.0.0.0")
    env.setdefault("VOXTRAL_PORT", str(GATEWAY_PORT))
    match mode:
        case "pod":
            argv = [python, "-m", "voxtral_gateway.cli", "serve"]
            return Program("gateway", [*argv, *extra_args], env)
        case "serverless":
            return Program("worker", [python, str(RUNPOD_DIR / "handler.py"), *extra_args], env)
        case "lb":
            return Program("lb", [python, str(RUNPOD_DIR / "lb.py"), *extra_args], env)
    raise ValueError(f"unknown mode {mode!r}")


def engine_program(
    profile_name: str, base_env: Mapping[str, str], *, port: int = ENGINE_PORT
) -> Program:
    """`vllm serve ...` exactly as the serve/ launcher would start it for this profile."""
    from serve.models import prepare_model
    from serve.profiles import load_profile

    profile = load_profile(profile_name)
    prepare_model(profile)  # builds the CPU test models; Hub models download in vLLM itself
    return Program(
        "engine",
        list(profile.engine_command(port)),
        {**base_env, **profile.engine_env()},
    )


class Supervisor:
    """Start programs, watch them, stop them all together."""

    def __init__(self, programs: Sequence[Program], *, grace_s: float) -> None:
        self.programs = list(programs)
        self.grace_s = grace_s
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stop_requested: int | None = None

    def request_stop(self, signum: int, _frame: object = None) -> None:
        logger.info("received signal %d; stopping", signum)
        self._stop_requested = signum

    def run(self) -> int:
        for program in self.programs:
            logger.info("starting %s: %s", program.name, " ".join(program.argv))
            # Own process group: a signal for the child reaches its workers too (vLLM forks).
            self.children[program.name] = subprocess.Popen(
                program.argv, env=program.env or None, start_new_session=True
            )
        exit_code = self._wait_for_first_exit()
        self._stop_all()
        return exit_code

    def _wait_for_first_exit(self) -> int:
        while self._stop_requested is None:
            for name, child in self.children.items():
                code = child.poll()
                if code is not None:
                    logger.error("%s exited with code %d; stopping the rest", name, code)
                    # A clean exit of one half is still a failure of the whole service.
                    return code or 1
            time.sleep(_POLL_S)
        return 0

    def _stop_all(self) -> None:
        # Last started first: the front process drains its in-flight requests while the
        # engine it needs for them is still up; only then does the engine stop.
        for child in reversed(list(self.children.values())):
            if child.poll() is not None:
                continue
            _signal_group(child, signal.SIGTERM)
            try:
                child.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "pid %d ignored SIGTERM for %.0f s; killing", child.pid, self.grace_s
                )
                _signal_group(child, signal.SIGKILL)
                child.wait()


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def _default_grace_s() -> float:
    from voxtral_gateway.settings import Settings

    return Settings().drain_timeout_s + 15.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["pod", "serverless", "lb"])
    parser.add_argument(
        "--profile",
        default=os.environ.get("VOXTRAL_PROFILE", "voxtral-mini-3b-h100-80gb"),
        help="serve/ profile for the engine (env VOXTRAL_PROFILE)",
    )
    parser.add_argument("--engine-port", type=int, default=ENGINE_PORT, help="vLLM's port")
    parser.add_argument(
        "--grace-s",
        type=float,
        default=None,
        help="SIGTERM to SIGKILL per process, seconds (default: the gateway's drain time + 15)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    # Arguments the supervisor does not know go to the front process, e.g.
    # `serverless --max-concurrent-jobs 16` in a template's dockerStartCmd.
    args, front_args = build_parser().parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervise: %(message)s")
    base_env = dict(os.environ)
    engine = engine_program(args.profile, base_env, port=args.engine_port)
    front = front_program(
        args.mode,
        sys.executable,
        base_env,
        engine_port=args.engine_port,
        engine_api_key=engine.env.get("VLLM_API_KEY"),
        extra_args=front_args,
    )
    grace_s = args.grace_s if args.grace_s is not None else _default_grace_s()
    supervisor = Supervisor([engine, front], grace_s=grace_s)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
