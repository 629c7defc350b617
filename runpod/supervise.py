"""The RunPod image's entry point: the vLLM engine plus one front process, under serve's
one supervisor (serve/supervisor.py, the same as `python -m serve up`).

    python runpod/supervise.py pod          engine :8000 + gateway :8001 (a RunPod Pod)
    python runpod/supervise.py serverless   engine + runpod/handler.py (queue-based endpoint)
    python runpod/supervise.py lb           engine + runpod/lb.py (load-balancing endpoint)

The engine command comes from a serve/ profile (`--profile`, default from VOXTRAL_PROFILE),
and the front process gets that profile's gateway settings (`gateway_env`, the served model
name, the engine key) exactly as `serve up` gives them; the template's own VOXTRAL_* variables
win. The front process starts once the engine answers /health. If either process exits, the
other is stopped and the supervisor exits with the first exit code, so RunPod restarts the
container instead of leaving half a service running. SIGTERM (RunPod's stop) goes to the front
process first, so the gateway can drain its in-flight requests against a live engine, then to
the engine; each gets `--grace-s` before SIGKILL.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from serve.launcher import GatewayTarget, gateway_env
from serve.profiles import Profile, load_profile
from serve.supervisor import Program, Supervisor

__all__ = ["Program", "Supervisor", "build_parser", "engine_program", "front_program", "main"]

RUNPOD_DIR = Path(__file__).resolve().parent
ENGINE_PORT = 8000
GATEWAY_PORT = 8001
ENGINE_READY_TIMEOUT_S = 3600.0
"""A first start downloads the weights and compiles; RunPod's own health checks judge later."""


def front_program(
    mode: str,
    python: str,
    base_env: Mapping[str, str],
    *,
    engine_port: int = ENGINE_PORT,
    engine_api_key: str | None = None,
    profile: Profile | None = None,
    extra_args: Sequence[str] = (),
) -> Program:
    """The process that faces clients, pointed at the local engine (with its key, if any)
    and set up as `serve up` sets up a gateway for `profile`; the template's env wins."""
    target = GatewayTarget(
        upstream_url=f"http://127.0.0.1:{engine_port}",
        model=profile.served_model_name if profile else None,
        api_key=engine_api_key,
        settings_env=dict(profile.gateway_env) if profile else {},
    )
    # RunPod reaches the container from outside: listen on all interfaces.
    env = gateway_env(target, host="0.0.0.0", port=GATEWAY_PORT) | dict(base_env)
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
    """`vllm serve ...` exactly as the serve/ launcher would start it for this profile; the
    front process waits for its /health."""
    from serve.models import prepare_model

    profile = load_profile(profile_name)
    prepare_model(profile)  # builds the CPU test models; Hub models download in vLLM itself
    return Program(
        "engine",
        list(profile.engine_command(port)),
        {**base_env, **profile.engine_env()},
        ready_url=f"http://127.0.0.1:{port}/health",
        ready_timeout_s=ENGINE_READY_TIMEOUT_S,
    )


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
        profile=load_profile(args.profile),
        extra_args=front_args,
    )
    grace_s = args.grace_s if args.grace_s is not None else _default_grace_s()
    supervisor = Supervisor([engine, front], grace_s=grace_s)
    supervisor.stop_on_signals()
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
