"""`python -m serve`: run vLLM from a profile in configs/profiles/, and the gateway.

python -m serve list
python -m serve model PROFILE                 build the profile's model folder if generated
python -m serve engine PROFILE [--port N] [--dry-run]
python -m serve up PROFILE [--engine-port N] [--port N]
python -m serve gateway --upstream URL [--model NAME] [--port N]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from serve.launcher import (
    ENGINE_READY_TIMEOUT_S,
    GATEWAY_READY_TIMEOUT_S,
    LOG_DIR,
    GatewayTarget,
    engine_url,
    gateway_command,
    gateway_env,
    probe_host,
    profile_target,
    render_dry_run,
)
from serve.models import prepare_model
from serve.profiles import load_profile, profile_names
from serve.supervisor import Program, Supervisor

logger = logging.getLogger("serve")

DEFAULT_ENGINE_PORT = 8000
DEFAULT_GATEWAY_PORT = 8001
UP_GRACE_S = 20.0
"""SIGTERM to SIGKILL per process on the way down (seconds)."""


def _cmd_list(args: argparse.Namespace) -> int:
    for name in profile_names():
        sys.stdout.write(f"{name:28} {load_profile(name).description}\n")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    sys.stdout.write(prepare_model(load_profile(args.profile)) + "\n")
    return 0


def _cmd_engine(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    if args.dry_run:
        sys.stdout.write(render_dry_run(profile, args.port) + "\n")
        return 0
    prepare_model(profile)
    cmd = profile.engine_command(args.port)
    # exec: the engine becomes this process, so Ctrl-C and SIGTERM reach vLLM directly.
    os.execvpe(cmd[0], cmd, {**os.environ, **profile.engine_env()})  # noqa: S606 - argv list, no shell


def _cmd_up(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    prepare_model(profile)
    upstream = engine_url(profile, args.engine_port)
    target = profile_target(profile, upstream)
    engine = Program(
        "engine",
        profile.engine_command(args.engine_port),
        profile.engine_env(),
        ready_url=f"{upstream}/health",
        ready_timeout_s=args.ready_timeout,
        log_path=LOG_DIR / f"engine-{profile.name}-{args.engine_port}.log",
    )
    gateway = Program(
        "gateway",
        gateway_command(),
        gateway_env(target, host=args.host, port=args.port),
        # /ready, not /health: it answers 200 only once the gateway has reached the engine.
        ready_url=f"http://{probe_host(args.host)}:{args.port}/ready",
        ready_timeout_s=GATEWAY_READY_TIMEOUT_S,
        log_path=LOG_DIR / f"gateway-{args.port}.log",
    )
    logger.info("logs: %s, %s", engine.log_path, gateway.log_path)
    supervisor = Supervisor([engine, gateway], grace_s=UP_GRACE_S)
    supervisor.stop_on_signals()
    return supervisor.run()


def _cmd_gateway(args: argparse.Namespace) -> int:
    target = GatewayTarget(
        upstream_url=args.upstream.rstrip("/"),
        model=args.model,
        api_key=os.environ.get(args.api_key_env) or None,
    )
    cmd = gateway_command()
    env = {**os.environ, **gateway_env(target, host=args.host, port=args.port)}
    os.execvpe(cmd[0], cmd, env)  # noqa: S606 - argv list, no shell


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list profiles").set_defaults(func=_cmd_list)

    model = sub.add_parser("model", help="generate the profile's model folder if needed")
    model.add_argument("profile")
    model.set_defaults(func=_cmd_model)

    engine = sub.add_parser("engine", help="run vLLM for a profile (foreground)")
    engine.add_argument("profile")
    engine.add_argument("--port", type=int, default=DEFAULT_ENGINE_PORT)
    engine.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    engine.set_defaults(func=_cmd_engine)

    up = sub.add_parser("up", help="run vLLM and the gateway in front of it")
    up.add_argument("profile")
    up.add_argument("--engine-port", type=int, default=DEFAULT_ENGINE_PORT)
    up.add_argument("--host", default="127.0.0.1", help="gateway interface")
    up.add_argument("--port", type=int, default=DEFAULT_GATEWAY_PORT, help="gateway port")
    up.add_argument("--ready-timeout", type=float, default=ENGINE_READY_TIMEOUT_S)
    up.set_defaults(func=_cmd_up)

    gateway = sub.add_parser("gateway", help="run the gateway for a remote engine")
    gateway.add_argument("--upstream", required=True, help="engine base URL, without /v1")
    gateway.add_argument("--model", help="model name to send (default: the engine's first)")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=DEFAULT_GATEWAY_PORT)
    gateway.add_argument(
        "--api-key-env", default="VOXTRAL_ENGINE_API_KEY", help="env var holding the engine key"
    )
    gateway.set_defaults(func=_cmd_gateway)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
