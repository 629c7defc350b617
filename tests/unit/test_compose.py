"""docker-compose.yml: valid against the Compose specification, and wired the way the README says.

No Docker engine runs here, so `docker compose config` is replaced by the Compose spec's own JSON
schema (vendored in tests/data/compose-spec/) after interpolating `${VAR:-default}` as Compose does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from voxtral_gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA_FILE = REPO / "tests" / "data" / "compose-spec" / "compose-spec.json"

_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\})"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Apply Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$` to every string."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group("name"), match.group("op"), match.group("default")
        current = env.get(name)
        if op == ":-" and not current:
            return default
        if op == "-" and current is None:
            return default
        return current or ""

    return _VARIABLE.sub(substitute, value)


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    """The file as Compose sees it with no variables set: every default applies."""
    return interpolate(raw_compose, env={})


def _schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_compose_specification_schema(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []


def test_schema_check_rejects_a_misspelt_service_key(compose: dict[str, Any]) -> None:
    # Guards the guard: a typo like `healthcheckk` must not pass silently.
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["healthcheckk"] = broken["services"]["gateway"]["healthcheck"]
    assert any("healthcheckk" in error for error in _schema_errors(broken))


def test_compose_interpolation_uses_caller_values_over_defaults(
    raw_compose: dict[str, Any],
) -> None:
    overridden = interpolate(raw_compose, {"VOXTRAL_MODEL": "mistralai/Voxtral-Small-24B-2507"})
    command = overridden["services"]["vllm"]["command"]
    assert command[command.index("--model") + 1] == "mistralai/Voxtral-Small-24B-2507"
    assert _schema_errors(overridden) == []


def test_engine_image_is_official_vllm_at_a_pinned_release(compose: dict[str, Any]) -> None:
    image = compose["services"]["vllm"]["image"]
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", image), image


def _flag_values(command: list[str]) -> dict[str, str]:
    return {
        flag: value for flag, value in zip(command, command[1:], strict=False) if flag[:2] == "--"
    }


def test_engine_command_loads_voxtral_in_mistral_format(compose: dict[str, Any]) -> None:
    flags = _flag_values(compose["services"]["vllm"]["command"])
    assert flags["--model"] == "mistralai/Voxtral-Mini-3B-2507"
    assert flags["--tokenizer-mode"] == "mistral"
    assert flags["--config-format"] == "mistral"
    assert flags["--load-format"] == "mistral"
    assert int(flags["--max-model-len"]) >= 2048  # a 30 s segment is ~380 prompt tokens
    assert 0 < float(flags["--gpu-memory-utilization"]) <= 0.95
    assert flags["--host"] == "0.0.0.0"
    assert flags["--port"] == "8000"


def _options(argv: list[str]) -> dict[str, list[str]]:
    """`--flag value...` pairs; a bare flag maps to an empty list."""
    options: dict[str, list[str]] = {}
    current = None
    for token in argv:
        if token.startswith("--"):
            current = token
            options.setdefault(current, [])
        else:
            assert current is not None, f"value {token!r} before any flag"
            options[current].append(token)
    return options


def test_engine_command_is_the_24gb_serve_profile(compose: dict[str, Any]) -> None:
    # One source of truth for Voxtral flags: configs/profiles, as `python -m serve` runs them.
    from serve.profiles import load_profile

    profile = load_profile("voxtral-mini-3b-24gb")
    profile_argv = profile.engine_command(8000)
    assert profile_argv[:2] == [profile.vllm_executable(), "serve"]
    expected = _options([*profile_argv[3:], "--model", profile_argv[2]])
    actual = _options(compose["services"]["vllm"]["command"])
    assert actual == expected
    gateway_env = compose["services"]["gateway"]["environment"]
    assert gateway_env["VOXTRAL_UPSTREAM_MODEL"] == profile.served_model_name


def test_engine_reserves_an_nvidia_gpu_and_caches_weights(compose: dict[str, Any]) -> None:
    vllm = compose["services"]["vllm"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "hf-cache:/root/.cache/huggingface" in vllm["volumes"]
    assert "hf-cache" in compose["volumes"]
    assert "ports" not in vllm, "the engine must only be reachable through the gateway"


def test_engine_takes_hf_token_from_the_caller_environment(raw_compose: dict[str, Any]) -> None:
    token_value = raw_compose["services"]["vllm"]["environment"]["HF_TOKEN"]
    assert interpolate(token_value, {"HF_TOKEN": "hf_abc"}) == "hf_abc"
    assert interpolate(token_value, {}) == ""


def test_gateway_starts_only_after_engine_is_healthy(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert gateway["build"]["dockerfile"] == "Dockerfile"
    assert (REPO / gateway["build"]["context"] / gateway["build"]["dockerfile"]).is_file()


def test_gateway_image_tag_is_the_package_version(compose: dict[str, Any]) -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert compose["services"]["gateway"]["image"] == f"voxtral-gateway:{version}"


def test_gateway_environment_is_understood_by_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = compose["services"]["gateway"]["environment"]
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"VOXTRAL_{name.upper()}", raising=False)
    for name, value in environment.items():
        # Settings ignores unknown VOXTRAL_ variables, so a typo would silently do nothing.
        field = name.removeprefix("VOXTRAL_").split("__")[0].lower()
        assert field in Settings.model_fields, f"{name} is not a Settings field"
        monkeypatch.setenv(name, str(value))

    settings = Settings()

    assert settings.upstream_urls == ["http://vllm:8000"]
    assert settings.upstream_model == "mistralai/Voxtral-Mini-3B-2507"
    assert settings.host == "0.0.0.0"
    assert settings.port == 8001
    assert settings.api_keys == []


def _seconds(duration: str) -> float:
    """A Compose duration such as `75s`, `1m30s` or `1h`, in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_gateway_gets_time_to_drain_before_docker_kills_it(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = compose["services"]["gateway"]
    for name, value in gateway["environment"].items():
        monkeypatch.setenv(name, str(value))
    assert _seconds(gateway["stop_grace_period"]) > Settings().drain_timeout_s


def test_gateway_client_keys_come_from_the_caller_environment(
    raw_compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = interpolate(
        raw_compose["services"]["gateway"]["environment"], {"VOXTRAL_API_KEYS": '["sk-one"]'}
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    assert [key.get_secret_value() for key in Settings().api_keys] == ["sk-one"]


def test_locust_runs_only_under_the_loadtest_profile(compose: dict[str, Any]) -> None:
    locust = compose["services"]["locust"]
    assert locust["profiles"] == ["loadtest"]
    assert locust["image"].startswith("locustio/locust:")
    for service in ("vllm", "gateway"):
        assert "profiles" not in compose["services"][service]


# Locust monkey-patches the standard library when imported (gevent), so it runs in a child.
_PARSE_LOCUST_ARGS = """
import json, sys
from locust import events
from locust.argument_parser import get_parser
import importlib.util
spec = importlib.util.spec_from_file_location("locustfile", sys.argv[1])
module = sys.modules["locustfile"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
parser = get_parser()
events.init_command_line_parser.fire(parser=parser)
options = parser.parse_args(json.loads(sys.argv[2]))
print(json.dumps({k: v for k, v in vars(options).items() if isinstance(v, (str, int, float))}))
"""


def test_locust_command_parses_with_the_repo_locustfile(compose: dict[str, Any]) -> None:
    locust = compose["services"]["locust"]
    command = locust["command"]
    mounts = dict(volume.split(":")[:2] for volume in locust["volumes"])
    container_file = command[command.index("-f") + 1]
    host_dir = next(h for h, c in mounts.items() if container_file.startswith(c + "/"))
    locustfile = REPO / host_dir / container_file.removeprefix(mounts[host_dir] + "/")
    assert locustfile.is_file(), locustfile

    result = subprocess.run(
        [sys.executable, "-c", _PARSE_LOCUST_ARGS, str(locustfile), json.dumps(command)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout.strip().splitlines()[-1])
    assert options["host"] == "http://gateway:8001"
    assert options["route"] == "openai"
    corpus_host_dir = next(h for h, c in mounts.items() if c == options["corpus"])
    assert corpus_host_dir == "./.cache/corpus"


@pytest.mark.parametrize(
    ("service", "port", "path"), [("vllm", 8000, "/health"), ("gateway", 8001, "/ready")]
)
def test_healthcheck_command_passes_on_200_and_fails_otherwise(
    compose: dict[str, Any],
    health_server: tuple[int, dict[str, int]],
    service: str,
    port: int,
    path: str,
) -> None:
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] in {"python", "python3"} and test[2] == "-c"
    free_port, statuses = health_server
    # Same probe code, aimed at our loopback server instead of the container's fixed port.
    probe = test[3].replace(f"127.0.0.1:{port}/", f"127.0.0.1:{free_port}/")
    assert probe != test[3]

    statuses[path] = 200
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0
    statuses[path] = 503
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0
