"""The gateway image's Dockerfile: hadolint-clean and following our image rules.

No Docker engine runs here, so the image is never built in CI; these checks are what stands between
a typo and a user's failed `docker compose build`.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "Dockerfile", REPO / "runpod" / "Dockerfile"]
GATEWAY_DOCKERFILE = REPO / "Dockerfile"

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|CREDENTIAL", re.IGNORECASE)


def _instructions(path: Path) -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(path))
    return parser.structure


def _final_stage(instructions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last_from = max(i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM")
    return instructions[last_from:]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_reports_nothing(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_base_image_is_pinned_to_a_version(dockerfile: Path) -> None:
    stages = {
        ins["value"].split()[-1]
        for ins in _instructions(dockerfile)
        if ins["instruction"] == "FROM" and " AS " in ins["value"].upper()
    }
    for ins in _instructions(dockerfile):
        if ins["instruction"] != "FROM":
            continue
        image = next(word for word in ins["value"].split() if not word.startswith("--"))
        if image in stages:
            continue
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{image} is not pinned"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_remote_add_and_no_baked_in_secrets(dockerfile: Path) -> None:
    for ins in _instructions(dockerfile):
        assert ins["instruction"] != "ADD", "use COPY (ADD fetches URLs and unpacks archives)"
        if ins["instruction"] in {"ENV", "ARG"}:
            for assignment in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", ins["value"]):
                name, value = assignment
                assert not (_SECRET_NAME.search(name) and value), f"{name} baked into the image"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_final_stage_has_a_healthcheck(dockerfile: Path) -> None:
    final = _final_stage(_instructions(dockerfile))
    assert any(ins["instruction"] == "HEALTHCHECK" for ins in final)


def test_gateway_image_runs_as_a_non_root_user() -> None:
    final = _final_stage(_instructions(GATEWAY_DOCKERFILE))
    users = [ins["value"].split(":")[0] for ins in final if ins["instruction"] == "USER"]
    assert users, "final stage never leaves root"
    assert users[-1] not in {"root", "0"}
    # The user must exist before USER names it (a missing uid only fails at `docker run`).
    uid_created = any(
        ins["instruction"] == "RUN" and f"--uid {users[-1]}" in ins["value"] for ins in final
    )
    assert uid_created or not users[-1].isdigit()


def test_gateway_image_installs_cpu_torch_before_the_package() -> None:
    runs = [
        ins["value"] for ins in _instructions(GATEWAY_DOCKERFILE) if ins["instruction"] == "RUN"
    ]
    torch_step = next(i for i, run in enumerate(runs) if "torch==" in run)
    package_step = next(
        i for i, run in enumerate(runs) if re.search(r"pip install (\S+ )*\.$", run)
    )
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_step]
    assert torch_step < package_step
    assert not any("vllm" in run for run in runs), "the gateway image must not carry the engine"
    constraints = (REPO / "serve" / "constraints-cpu.txt").read_text()
    pin = re.search(r"^torch==([^+\s]+)", constraints, re.MULTILINE)
    assert pin and f"torch=={pin.group(1)}" in runs[torch_step], "pin differs from constraints"


def _ignore_file_for(dockerfile: Path) -> Path:
    # BuildKit prefers <Dockerfile>.dockerignore beside the Dockerfile over the root one.
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
    return specific if specific.exists() else REPO / ".dockerignore"


def _dockerignore_allows(relative_path: str, ignore_file: Path) -> bool:
    """Apply a .dockerignore the way Docker does: last matching pattern wins, `!` re-includes."""
    allowed = True
    for line in ignore_file.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(relative_path, pattern) or relative_path.startswith(pattern + "/"):
            allowed = negate
    return allowed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_copy_sources_exist_in_the_build_context(dockerfile: Path) -> None:
    ignore_file = _ignore_file_for(dockerfile)
    for ins in _instructions(dockerfile):
        if ins["instruction"] != "COPY" or "--from=" in ins["value"]:
            continue
        *sources, _destination = ins["value"].split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repo"
            assert _dockerignore_allows(source.rstrip("/"), ignore_file), (
                f"COPY {source}: {ignore_file.name} drops it"
            )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_dockerignore_keeps_virtualenvs_and_caches_out_of_the_context(dockerfile: Path) -> None:
    ignore_file = _ignore_file_for(dockerfile)
    for path in (
        ".venv/bin/python",
        ".venv-engine/lib",
        ".cache/hf",
        "tests/data/x.wav",
        ".git/HEAD",
    ):
        assert not _dockerignore_allows(path, ignore_file), path
    assert _dockerignore_allows("voxtral_gateway/app.py", ignore_file)
    assert not _dockerignore_allows("voxtral_gateway/__pycache__/app.cpython-312.pyc", ignore_file)


def _materialize_build_context(dockerfile: Path, target: Path) -> None:
    """Lay out what the image's COPY steps put in WORKDIR, from files .dockerignore lets in."""
    ignore_file = _ignore_file_for(dockerfile)
    for ins in _instructions(dockerfile):
        if ins["instruction"] != "COPY" or "--from=" in ins["value"]:
            continue
        *sources, destination = ins["value"].split()
        for source in sources:
            into = target / (Path(source).name if destination.endswith("/") else destination)
            origin = REPO / source
            if origin.is_dir():
                for path in origin.rglob("*"):
                    relative = path.relative_to(REPO).as_posix()
                    if path.is_file() and _dockerignore_allows(relative, ignore_file):
                        copied = into / path.relative_to(origin)
                        copied.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, copied)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)


@pytest.mark.parametrize(
    ("dockerfile", "packages"),
    [
        (GATEWAY_DOCKERFILE, {"voxtral_gateway"}),
        (REPO / "runpod" / "Dockerfile", {"voxtral_gateway", "serve"}),
    ],
    ids=["Dockerfile", "runpod/Dockerfile"],
)
def test_pip_install_step_builds_from_the_copied_files_alone(
    dockerfile: Path, packages: set[str], tmp_path: Path
) -> None:
    # The image runs `pip install .` on what COPY brought in: build that same wheel here.
    context = tmp_path / "context"
    _materialize_build_context(dockerfile, context)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("voxtral_gateway-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = {name.split("/")[0] for name in names if name.endswith(".py")}
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "voxtral-gateway = voxtral_gateway.cli:main" in archive.read(entry_points).decode()
    assert packages <= top_level
    assert "voxtral_gateway/pipeline/vad.py" in names


def test_gateway_image_command_is_a_real_cli_invocation() -> None:
    from voxtral_gateway.cli import build_parser

    final = _final_stage(_instructions(GATEWAY_DOCKERFILE))
    entrypoint = next(json.loads(i["value"]) for i in final if i["instruction"] == "ENTRYPOINT")
    command = next(json.loads(i["value"]) for i in final if i["instruction"] == "CMD")
    assert entrypoint == ["voxtral-gateway"]
    assert 'voxtral-gateway = "voxtral_gateway.cli:main"' in (REPO / "pyproject.toml").read_text()
    args = build_parser().parse_args(command)
    assert args.command == "serve"
    assert args.host is None and args.port is None  # so VOXTRAL_HOST/VOXTRAL_PORT decide


def test_gateway_healthcheck_probe_follows_ready_status(
    health_server: tuple[int, dict[str, int]],
) -> None:
    final = _final_stage(_instructions(GATEWAY_DOCKERFILE))
    healthcheck = next(ins["value"] for ins in final if ins["instruction"] == "HEALTHCHECK")
    exec_form = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert exec_form[:2] == ["python", "-c"]
    free_port, statuses = health_server
    probe = exec_form[2].replace("127.0.0.1:8001/", f"127.0.0.1:{free_port}/")
    assert probe != exec_form[2]

    statuses["/ready"] = 200
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0
    statuses["/ready"] = 503
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0
