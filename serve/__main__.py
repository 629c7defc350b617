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
    GatewayTarget,
    StopRequested,
    engine_url,
    gateway_command,
    gateway_env,
    probe_host,
    render_dry_run,
    start_engine,
    start_gateway,
    stop_on_signals,
    wait_for_first_exit,
)
from serve.models import prepare_model
from serve.process import ManagedProcess, ProcessStartError
from serve.profiles import load_profile, profile_names

logger = logging.getLogger("serve")

DEFAULT_ENGINE_PORT = 8000
DEFAULT_GATEWAY_PORT = 8001


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
    processes: list[ManagedProcess] = []
    with stop_on_signals():
        try:
            engine = start_engine(profile, args.engine_port)
            processes.append(engine)
            waited = engine.wait_healthy(
                engine_url(profile, args.engine_port) + "/health", timeout_s=args.ready_timeout
            )
            logger.info("engine ready in %.1f s (log %s)", waited, engine.log_path)
            target = GatewayTarget(
                upstream_url=engine_url(profile, args.engine_port),
                model=profile.served_model_name,
                api_key=profile.api_key(),
                settings_env=dict(profile.gateway_env),
            )
            gateway = start_gateway(target, host=args.host, port=args.port)
            processes.append(gateway)
            # /ready, not /health: it answers 200 only once the gateway has reached the engine.
            gateway.wait_healthy(
                f"http://{probe_host(args.host)}:{args.port}/ready",
                timeout_s=GATEWAY_READY_TIMEOUT_S,
            )
            logger.info(
                "gateway on http://%s:%d/v1 -> %s", args.host, args.port, target.upstream_url
            )
            return wait_for_first_exit(processes)
        except ProcessStartError as exc:
            logger.error("%s", exc)
            return 1
        except StopRequested as stop:
            logger.info("%s received: stopping", stop)
            return 0
        finally:
            for process in reversed(processes):  # gateway first: it drains in-flight requests
                process.stop()


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
