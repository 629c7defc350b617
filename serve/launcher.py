"""Commands and environments for a profile's engine and the gateway in front of it."""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from serve.models import prepare_model
from serve.process import ManagedProcess
from serve.profiles import REPO_ROOT, Profile

logger = logging.getLogger(__name__)

LOG_DIR = REPO_ROOT / ".cache" / "logs"
ENGINE_READY_TIMEOUT_S = 900.0  # a cold GPU start (download + compile) takes minutes
GATEWAY_READY_TIMEOUT_S = 120.0


def probe_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def engine_url(profile: Profile, port: int) -> str:
    return f"http://{probe_host(profile.host)}:{port}"


def render_dry_run(profile: Profile, port: int) -> str:
    """The engine command as one shell line, env first; the API key value is never shown,
    only a reference to the variable it comes from."""
    assignments = []
    for key, value in sorted(profile.engine_env().items()):
        shown = f'"${profile.api_key_env}"' if key == "VLLM_API_KEY" else shlex.quote(value)
        assignments.append(f"{key}={shown}")
    return " ".join([*assignments, shlex.join(profile.engine_command(port))])


def gateway_executable() -> str:
    """The `voxtral-gateway` console script of this venv, else the one on PATH."""
    beside = Path(sys.executable).parent / "voxtral-gateway"
    if beside.is_file():
        return str(beside)
    return shutil.which("voxtral-gateway") or "voxtral-gateway"


@dataclass(frozen=True, kw_only=True)
class GatewayTarget:
    """Where the gateway sends segments."""

    upstream_url: str
    model: str | None = None
    api_key: str | None = None
    settings_env: dict[str, str] = field(default_factory=dict)
    """Further gateway settings as `VOXTRAL_*` variables (the profile's `gateway_env`)."""
    realtime: bool = False
    """The upstream is a Voxtral Realtime engine: bridge realtime sessions to its WebSocket."""


def profile_target(profile: Profile, upstream_url: str) -> GatewayTarget:
    """What `serve up` tells the gateway about the profile's engine at `upstream_url`."""
    return GatewayTarget(
        upstream_url=upstream_url,
        model=profile.served_model_name,
        api_key=profile.api_key(),
        settings_env=dict(profile.gateway_env),
        realtime=profile.realtime,
    )


def gateway_command() -> list[str]:
    return [gateway_executable(), "serve"]


def gateway_env(target: GatewayTarget, *, host: str, port: int) -> dict[str, str]:
    """Env for `voxtral-gateway serve` (read by voxtral_gateway.settings.Settings)."""
    env = {
        **target.settings_env,
        "VOXTRAL_HOST": host,
        "VOXTRAL_PORT": str(port),
        "VOXTRAL_UPSTREAM_URLS": json.dumps([target.upstream_url]),
    }
    if target.model:
        env["VOXTRAL_UPSTREAM_MODEL"] = target.model
    if target.api_key:
        env["VOXTRAL_UPSTREAM_API_KEY"] = target.api_key
    if target.realtime:
        # Same host and port as the HTTP upstream; the bridge appends /v1/realtime.
        env.setdefault(
            "VOXTRAL_REALTIME__PASSTHROUGH_URL", "ws" + target.upstream_url.removeprefix("http")
        )
    return env


def start_engine(profile: Profile, port: int, *, log_path: Path | None = None) -> ManagedProcess:
    """Prepare the profile's model and start `vllm serve` (not yet waited for)."""
    prepare_model(profile)
    log_path = log_path or LOG_DIR / f"engine-{profile.name}-{port}.log"
    logger.info("starting engine: %s", shlex.join(profile.engine_command(port)))
    return ManagedProcess.start(
        f"engine {profile.name}",
        profile.engine_command(port),
        env=profile.engine_env(),
        log_path=log_path,
    )
