"""README.md against the code: every setting with its default, every route, every marked block.

Both directions: a Settings field or a route the README leaves out fails, and so does a documented
one that no longer exists. Blocks marked `check` (GPU, Docker, cloud) are checked here; blocks
marked `run` are run by tests/engine/test_readme_commands.py. The convention is in
tests/readme_blocks.py.

Configuration table rows: the first cell names one or more variables as code spans joined by
` / `; a name starting with `__` continues the previous name's group
(`VOXTRAL_VAD__THRESHOLD` / `__MIN_SILENCE_MS`). The second cell gives their defaults, joined by
` / ` in the same order: `true`/`false`, `none`, a number (optionally with `KiB`, `MiB`, `GiB`,
`min` or `h`), a JSON list, or the string itself; a note in parentheses may follow.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from tests.readme_blocks import (
    CODE_LANGUAGES,
    REPO,
    SHELL_LANGUAGES,
    Block,
    all_blocks,
    loose_output_blocks,
)
from voxtral_gateway.app import create_app
from voxtral_gateway.protocol import TranscriptionRequest
from voxtral_gateway.settings import Settings

README = REPO / "README.md"
_UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "min": 60, "h": 3600}
# FastAPI's own API-doc pages: served, but not the gateway's API; documenting them is optional.
_FRAMEWORK_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")} | {
    ("GET", "/docs/oauth2-redirect")
}
_ROUTE_SPAN = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|WS) (/\S*)$")


def _section(heading: str) -> str:
    """README text from `heading` (a whole line) to the next heading of the same or higher level."""
    text = README.read_text()
    level = heading.split(" ")[0]
    start = text.index("\n" + heading + "\n")
    rest = text[start + len(heading) + 2 :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


# --- settings -----------------------------------------------------------------------------


def setting_defaults() -> dict[str, Any]:
    """`VOXTRAL_...` name -> default, nested groups included."""

    def walk(model: type[BaseModel], prefix: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found |= walk(annotation, f"{prefix}{name.upper()}__")
            else:
                found[f"{prefix}{name.upper()}"] = field.get_default(call_default_factory=True)
        return found

    return walk(Settings, "VOXTRAL_")


def table_rows(section: str, first_header: str) -> list[str]:
    """Body rows of the section's tables whose first header cell is `first_header`."""
    rows: list[str] = []
    table: list[str] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table and table[0].strip("| ").split("|")[0].strip().lower() == first_header:
            rows += [row for row in table[1:] if not re.match(r"^\|\s*:?-", row)]
        table = []
    return rows


def documented_settings() -> dict[str, tuple[str, str]]:
    """`VOXTRAL_...` name -> (default as written, the row it came from) in the Configuration
    section's tables headed `| variable | default | meaning |`."""
    rows = table_rows(_section("## Configuration"), "variable")
    documented: dict[str, tuple[str, str]] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) >= 2, f"configuration row without a default cell: {row}"
        names = re.findall(r"`([^`]+)`", cells[0])
        assert names, f"configuration row names no `VOXTRAL_...` variable: {row}"
        defaults = [part.strip() for part in cells[1].split(" / ")]
        assert len(defaults) == len(names), (
            f"configuration row has {len(names)} names but {len(defaults)} defaults "
            f"(join them with ' / ' in the same order): {row}"
        )
        group = ""
        for name, default in zip(names, defaults, strict=True):
            if name.startswith("VOXTRAL_"):
                group = name[: name.rindex("__") + 2] if "__" in name else ""
                full = name
            elif name.startswith("__") and group:
                full = group + name[2:]
            else:
                pytest.fail(f"cannot read `{name}` in configuration row {row!r}")
            assert full not in documented, f"{full} is documented twice"
            documented[full] = (default, row)
    return documented


def _parse_number(text: str) -> float | None:
    match = re.fullmatch(r"(-?[\d_.,]+(?:e-?\d+)?)\s*(KiB|MiB|GiB|min|h)?", text)
    if not match:
        return None
    number = float(match[1].replace(",", "").replace("_", ""))
    return number * _UNITS.get(match[2] or "", 1)


def default_matches(written: str, value: Any) -> bool:
    text = re.sub(r"\s*\(.*\)$", "", written).strip().strip("`").strip()
    if value is None:
        return text.lower() == "none"
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, int | float):
        number = _parse_number(text)
        return number is not None and math.isclose(number, value, rel_tol=1e-9)
    if isinstance(value, list):
        plain = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
        try:
            return json.loads(text) == plain
        except ValueError:
            return False
    return text == str(value)


def test_every_setting_is_in_the_configuration_table_with_its_default() -> None:
    documented = documented_settings()
    missing = [name for name in setting_defaults() if name not in documented]
    assert not missing, (
        "README.md's Configuration table lacks these settings (add a row: `VOXTRAL_...` | "
        "default | meaning): " + ", ".join(missing)
    )
    wrong = [
        f"{name}: README says {written!r}, settings.py says {value!r} (row: {row})"
        for name, value in setting_defaults().items()
        for written, row in [documented[name]]
        if not default_matches(written, value)
    ]
    assert not wrong, "README.md's Configuration table has wrong defaults:\n" + "\n".join(wrong)


def test_every_documented_setting_exists() -> None:
    unknown = [
        f"{name} (row: {row})"
        for name, (_, row) in documented_settings().items()
        if name not in setting_defaults()
    ]
    assert not unknown, "README.md documents settings that Settings lacks:\n" + "\n".join(unknown)


def test_default_reading_follows_the_documented_rules() -> None:
    assert default_matches("200 MiB", 200 * 1024 * 1024)
    assert default_matches("4 h", 14400.0)
    assert default_matches("`[]` (open)", [])
    assert default_matches('`["http://127.0.0.1:8000"]`', ["http://127.0.0.1:8000"])
    assert default_matches("none (the engine's first model)", None)
    assert default_matches("true", True)
    assert not default_matches("false", True)
    assert not default_matches("120", 60.0)
    assert not default_matches("open", [])


# --- request parameters -------------------------------------------------------------------


def documented_parameters() -> set[str]:
    """First-column names of README's Request parameters table, `[]` (form list keys) dropped."""
    rows = table_rows(_section("### Request parameters"), "parameter")
    names = set()
    for row in rows:
        name = re.findall(r"`([^`]+)`", row.strip("|").split("|")[0])
        assert name, f"Request parameters row without a `name`: {row}"
        names.add(name[0].removesuffix("[]"))
    return names


def test_request_parameters_table_matches_the_request_model() -> None:
    fields = set(TranscriptionRequest.model_fields) | {"file"}  # the upload itself
    documented = documented_parameters()
    assert not fields - documented, "README.md's Request parameters table lacks: " + ", ".join(
        sorted(fields - documented)
    )
    assert not documented - fields, (
        "README.md documents request parameters TranscriptionRequest lacks: "
        + ", ".join(sorted(documented - fields))
    )


# --- routes -------------------------------------------------------------------------------


def _flatten(routes: list[Any], prefix: str = "") -> list[Any]:
    """(method, path) of every route. FastAPI 0.165 keeps included routers as lazy
    `_IncludedRouter` entries (no public walk yet), so step into `original_router`."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if hasattr(route, "original_router"):
            inner = prefix + (getattr(route.include_context, "prefix", "") or "")
            found += _flatten(route.original_router.routes, inner)
        elif getattr(route, "methods", None) is None:
            found.append(("WS", prefix + route.path))
        else:
            found += [(m, prefix + route.path) for m in sorted(route.methods) if m != "HEAD"]
    return found


def app_routes() -> set[tuple[str, str]]:
    public = _flatten(create_app(Settings()).routes)
    return set(public) - _FRAMEWORK_ROUTES


def documented_routes() -> set[tuple[str, str]]:
    spans = re.findall(r"`([^`]+)`", _section("### Endpoints"))
    return {(m[1], m[2]) for span in spans if (m := _ROUTE_SPAN.match(span))}


def test_every_route_is_in_the_endpoints_list() -> None:
    missing = sorted(app_routes() - documented_routes())
    assert not missing, (
        "README.md's Endpoints list lacks these routes (write them as `METHOD /path`, `WS` for "
        "WebSockets): " + ", ".join(f"`{m} {p}`" for m, p in missing)
    )


def test_every_documented_route_exists() -> None:
    unknown = sorted(documented_routes() - app_routes() - _FRAMEWORK_ROUTES)
    assert not unknown, "README.md's Endpoints list names routes the app lacks: " + ", ".join(
        f"`{m} {p}`" for m, p in unknown
    )


# --- blocks -------------------------------------------------------------------------------


def test_every_code_block_is_marked_run_or_check() -> None:
    unmarked = [
        f"{block.where}: ```{block.language}"
        for block in all_blocks()
        if block.language in CODE_LANGUAGES and block.mode is None
    ]
    assert not unmarked, (
        "Code blocks without a mode (tests/readme_blocks.py): mark each ```LANG run (run against "
        "the CPU engine, an ```output block may follow) or ```LANG check (GPU/Docker/cloud: "
        "syntax and references only):\n" + "\n".join(unmarked)
    )
    loose = [block.where for block in loose_output_blocks(all_blocks())]
    assert not loose, "```output blocks that follow no run block: " + ", ".join(loose)


def _blocks(language_set: frozenset[str] | set[str], mode: str | None = None) -> list[Block]:
    return [
        block
        for block in all_blocks()
        if block.language in language_set and (mode is None or block.mode == mode)
    ]


@pytest.mark.parametrize("block", _blocks({"json"}), ids=lambda b: b.where)
def test_json_blocks_parse(block: Block) -> None:
    json.loads(block.text)


@pytest.mark.parametrize("block", _blocks(CODE_LANGUAGES), ids=lambda b: b.where)
def test_code_block_syntax(block: Block) -> None:
    if block.language == "python":
        ast.parse(block.text, filename=block.where)
        return
    result = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert result.returncode == 0, f"{block.where}: bash -n: {result.stderr}"


def _commands(text: str) -> list[list[str]]:
    """Shell words of each simple command (line continuations joined, pipes and && split)."""
    joined = text.replace("\\\n", " ")
    commands: list[list[str]] = []
    for line in joined.splitlines():
        line = line.split(" #")[0]
        for part in re.split(r"\|\||&&|\||;|&(?!\d)", line):
            try:
                words = shlex.split(part)
            except ValueError:
                continue
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]  # environment assignments
            if words:
                commands.append(words)
    return commands


def _repo_paths(words: list[str]) -> list[str]:
    """Words that name a file in this repository (first path part is a top-level entry)."""
    top = {entry.name for entry in REPO.iterdir()} - {".venv", ".venv-engine", ".cache"}
    found = []
    for word in words:
        word = word.removeprefix("@")
        if "/" in word and "$" not in word and "://" not in word and word.split("/")[0] in top:
            found.append(word)
    return found


def _help(argv: list[str]) -> str:
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, f"{' '.join(argv)} --help failed: {result.stderr}"
    return result.stdout


def check_references(block: Block) -> None:
    """Paths exist; profile commands pass --dry-run; flags are in --help."""
    venv_bin = Path(sys.executable).parent
    for words in _commands(block.text):
        missing = [path for path in _repo_paths(words) if not (REPO / path).exists()]
        assert not missing, f"{block.where}: names files that do not exist: {missing}"
        program = words[0].removeprefix(".venv/bin/")
        if program in ("python", "python3") and words[1:3] == ["-m", "serve"] and len(words) > 3:
            subcommand, rest = words[3], words[4:]
            helptext = _help([sys.executable, "-m", "serve", subcommand])
            if subcommand in ("up", "engine", "model") and rest:
                profile = next(word for word in rest if not word.startswith("-"))
                result = subprocess.run(
                    [sys.executable, "-m", "serve", "engine", profile, "--dry-run"],
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                )
                assert result.returncode == 0, (
                    f"{block.where}: profile {profile!r}: --dry-run failed: {result.stderr}"
                )
        elif program == "voxtral-gateway" and len(words) > 1:
            rest = words[2:]
            helptext = _help([str(venv_bin / "voxtral-gateway"), words[1]])
        else:
            continue
        flags = [word.split("=")[0] for word in rest if word.startswith("-") and word != "-"]
        unknown = [flag for flag in flags if flag not in helptext.split()]
        unknown = [flag for flag in unknown if not re.search(rf"{re.escape(flag)}\b", helptext)]
        assert not unknown, f"{block.where}: `{' '.join(words)}`: unknown flags {unknown}"


@pytest.mark.parametrize("block", _blocks(SHELL_LANGUAGES), ids=lambda b: b.where)
def test_shell_block_references_exist(block: Block) -> None:
    check_references(block)


def test_docker_compose_commands_name_real_profiles_and_services() -> None:
    compose = (REPO / "docker-compose.yml").read_text()
    for block in _blocks(SHELL_LANGUAGES):
        for words in _commands(block.text):
            if words[:2] != ["docker", "compose"]:
                continue
            for flag, value in zip(words, words[1:], strict=False):
                if flag == "--profile":
                    assert re.search(rf"profiles:.*\b{value}\b", compose), (
                        f"{block.where}: compose profile {value!r} is not in docker-compose.yml"
                    )
            # Words after the subcommand that are not flags (or a flag's value) are services.
            plain = [
                word
                for index, word in enumerate(words[2:], start=2)
                if not word.startswith("-") and words[index - 1] not in ("--profile", "-f")
            ]
            services = plain[1:]
            for service in services:
                assert re.search(rf"^  {re.escape(service)}:", compose, flags=re.MULTILINE), (
                    f"{block.where}: compose service {service!r} is not in docker-compose.yml"
                )


@pytest.mark.parametrize(
    "command",
    [
        ".venv/bin/python -m serve up no-such-profile",
        ".venv/bin/python -m serve engine cpu-whisper-tiny-en --no-such-flag",
        ".venv/bin/voxtral-gateway transcribe speech.wav --no-such-flag",
        "docker build -f runpod/NoSuchDockerfile .",
    ],
)
def test_reference_check_catches_a_broken_command(command: str) -> None:
    block = Block("README.md", 1, "bash", ("check",), command + "\n")
    with pytest.raises(AssertionError):
        check_references(block)
