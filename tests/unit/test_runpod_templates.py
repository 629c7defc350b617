"""runpod/templates/*.json: valid RunPod template bodies that start the image the way they claim."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.runpod_scripts import load_runpod_script
from voxtral_gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO / "runpod" / "templates"
SCHEMA = json.loads((TEMPLATES_DIR / "template.schema.json").read_text())
TEMPLATES = sorted(p for p in TEMPLATES_DIR.glob("*.json") if p.name != "template.schema.json")
EXPECTED_MODE = {"pod.json": "pod", "serverless.json": "serverless", "load-balancer.json": "lb"}


def _errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def _template(name: str) -> dict[str, Any]:
    return json.loads((TEMPLATES_DIR / name).read_text())


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_kind_of_deployment_has_a_template() -> None:
    assert {p.name for p in TEMPLATES} == set(EXPECTED_MODE)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_matches_schema(path: Path) -> None:
    assert _errors(json.loads(path.read_text())) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"imageName": "someone/voxtral-runpod:latest"}, "latest tag"),
        ({"imageName": "someone/voxtral-runpod"}, "no tag"),
        ({"ports": ["8001"]}, "port without protocol"),
        ({"ports": ["8001/udp"]}, "unsupported protocol"),
        ({"isServerless": True}, "serverless with a pod volume"),
        ({"env": {"HF TOKEN": "x"}}, "env name with a space"),
        ({"containerDiskInGB": 40}, "misspelt field"),
    ],
)
def test_schema_rejects_mistakes(change: dict[str, Any], reason: str) -> None:
    assert _errors({**_template("pod.json"), **change}), reason


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_start_command_is_a_supervisor_mode(path: Path) -> None:
    supervise = load_runpod_script("supervise")
    template = json.loads(path.read_text())
    args = supervise.build_parser().parse_args(template["dockerStartCmd"])
    assert args.mode == EXPECTED_MODE[path.name]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_gateway_variables_are_real_settings_and_secrets_are_referenced(path: Path) -> None:
    env = json.loads(path.read_text())["env"]
    for name, value in env.items():
        if name.startswith("VOXTRAL_") and name != "VOXTRAL_PROFILE":
            field = name.removeprefix("VOXTRAL_").split("__")[0].lower()
            assert field in Settings.model_fields, f"{name} is not a Settings field"
        if re.search(r"TOKEN|KEY|SECRET", name):
            assert "{{ RUNPOD_SECRET_" in value, f"{name} must reference a RunPod secret"


def test_pod_exposes_the_gateway_but_not_the_unauthenticated_engine() -> None:
    pod = _template("pod.json")
    assert pod["ports"] == ["8001/http"]
    assert pod["env"]["HF_HOME"].startswith(pod["volumeMountPath"] + "/")
    dockerfile = (REPO / "runpod" / "Dockerfile").read_text()
    assert re.search(r"^EXPOSE .*\b8001\b", dockerfile, re.MULTILINE)


def test_pod_api_keys_value_parses_as_the_settings_list(monkeypatch: pytest.MonkeyPatch) -> None:
    # RunPod substitutes the secret text into the value; the result must be a JSON list.
    raw = _template("pod.json")["env"]["VOXTRAL_API_KEYS"]
    monkeypatch.setenv(
        "VOXTRAL_API_KEYS", raw.replace("{{ RUNPOD_SECRET_voxtral_api_key }}", "sk-1")
    )
    assert [k.get_secret_value() for k in Settings().api_keys] == ["sk-1"]


def test_load_balancer_serves_and_pings_on_the_exposed_port() -> None:
    lb = _template("load-balancer.json")
    assert lb["ports"] == [f"{lb['env']['PORT']}/http"]
    assert lb["env"]["PORT_HEALTH"] == lb["env"]["PORT"]
    # RunPod's own bearer key guards LB endpoints; a gateway key on top would refuse it.
    assert "VOXTRAL_API_KEYS" not in lb["env"]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_profile_is_a_gpu_serve_profile(path: Path) -> None:
    from serve.profiles import load_profile

    profile = load_profile(json.loads(path.read_text())["env"]["VOXTRAL_PROFILE"])
    assert profile.device == "cuda"
    assert profile.mistral_format


def test_image_and_supervisor_default_profiles_exist() -> None:
    from serve.profiles import load_profile

    dockerfile = (REPO / "runpod" / "Dockerfile").read_text()
    image_default = re.search(r"VOXTRAL_PROFILE=(\S+)", dockerfile)
    assert image_default, "runpod/Dockerfile sets no VOXTRAL_PROFILE"
    assert load_profile(image_default.group(1)).device == "cuda"
    supervise = load_runpod_script("supervise")
    parser_default = supervise.build_parser().get_default("profile")
    assert load_profile(parser_default).device == "cuda"
