"""The fenced code blocks of the READMEs, and how tests read them.

Convention (also in an HTML comment at the top of README.md). The first word of a fence's info
string is the language, as GitHub renders it; the words after it tell the tests what to do:

    ```bash run / ```python run
        Run by tests/engine/test_readme_commands.py against the real CPU engine and a real
        gateway, in a scratch folder holding `speech.wav` and `clip.wav` (espeak-ng, the
        sentence README.md quotes). Documented addresses are rewritten to the test's own:
        127.0.0.1:8001 -> the gateway, 127.0.0.1:8000 -> the engine, any other
        127.0.0.1:PORT -> a free port, and each such port wherever else the block names it
        (`--port 8010`); `.venv/bin/` and a leading `python` -> the test's venv. The block runs
        with `bash -e -o pipefail` from a folder that mirrors the repository root by links.
        The block must exit 0.
    ```output            right after a run block: its output, compared exactly
    ```output wer=0.2   ... compared by word error rate (at most 0.2)
    ```output shape     ... compared by shape: JSON keys (recursively), or SRT cue count
    ```output wer=0.1 shape   ... both
    ```bash check / ```python check
        Needs a GPU, Docker or a cloud account: only checked. Syntax (`bash -n`, `ast.parse`),
        repository paths it names exist, `python -m serve up|engine PROFILE` passes
        `--dry-run`, and every `--flag` given to `python -m serve ...` or `voxtral-gateway ...`
        is in that command's `--help`.
    ```json             must parse as JSON

Every bash/sh/shell/python block must say `run` or `check`: an unmarked one fails the tests, so
a new command cannot slip in untested.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import pytest
import srt

REPO = Path(__file__).resolve().parents[1]
READMES = ("README.md", "serve/README.md", "runpod/README.md")
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})
CODE_LANGUAGES = SHELL_LANGUAGES | {"python"}
MODES = frozenset({"run", "check"})

BLOCK_TIMEOUT_S = 300
_ADDRESS = re.compile(r"127\.0\.0\.1:(\d+)")
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    readme: str
    line: int
    """1-based line of the opening fence."""
    language: str
    words: tuple[str, ...]
    """The info string's words after the language."""
    text: str

    @property
    def where(self) -> str:
        return f"{self.readme}:{self.line}"

    @property
    def mode(self) -> str | None:
        marked = [word for word in self.words if word in MODES]
        return marked[0] if marked else None

    def option(self, name: str) -> str | None:
        """`name=value` from the info string, or `name` alone (-> "")."""
        for word in self.words:
            key, _, value = word.partition("=")
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class RunnableBlock:
    block: Block
    expected: Block | None
    """The ```output block right after it, if any."""


def read_blocks(readme: str) -> list[Block]:
    """Every fenced block of `readme` (a path relative to the repository), in order."""
    lines = (REPO / readme).read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence = opening["fence"]
        info = opening["info"].split()
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end])
            end += 1
        language = info[0] if info else ""
        text = "\n".join(body) + "\n" if body else ""
        blocks.append(Block(readme, index + 1, language, tuple(info[1:]), text))
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for readme in READMES for block in read_blocks(readme)]


def runnable_blocks(blocks: list[Block]) -> list[RunnableBlock]:
    """`run` blocks, each with the ```output block that follows it (if the next block is one)."""
    found: list[RunnableBlock] = []
    for index, block in enumerate(blocks):
        if block.language in CODE_LANGUAGES and block.mode == "run":
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            expected = (
                following
                if following and following.language == "output" and following.readme == block.readme
                else None
            )
            found.append(RunnableBlock(block, expected))
    return found


def loose_output_blocks(blocks: list[Block]) -> list[Block]:
    """```output blocks that do not follow a run block (so nothing would ever check them)."""
    loose: list[Block] = []
    for index, block in enumerate(blocks):
        if block.language != "output":
            continue
        previous = blocks[index - 1] if index else None
        if previous is None or previous.mode != "run" or previous.readme != block.readme:
            loose.append(block)
    return loose


# --- running ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Ran:
    returncode: int
    output: str
    """stdout, what the ```output block shows."""
    errors: str
    """stderr, shown when the block fails."""


class ReadmeRunner:
    """Runs each README's blocks once, in order, in one scratch folder per README."""

    def __init__(
        self, root: Path, blocks: dict[str, list[RunnableBlock]], ports: dict[str, str]
    ) -> None:
        self.root = root
        self.blocks = blocks
        self.ports = ports
        """Documented port -> this run's port (8001: the gateway, 8000: the engine)."""
        self.results: dict[tuple[str, int], Ran] = {}

    def rewrite(self, text: str) -> str:
        """Documented addresses and the venv, made this test run's own."""
        ports = dict(self.ports)

        def address(match: re.Match[str]) -> str:
            port = ports.setdefault(match[1], str(_free_port()))
            return f"127.0.0.1:{port}"

        text = _ADDRESS.sub(address, text)
        # The same ports given as flags (`--rp_api_port 8010`).
        for documented, port in ports.items():
            text = re.sub(rf"(?<![\d.:]){documented}(?!\d)", port, text)
        bin_dir = f"{Path(sys.executable).parent}/"
        text = text.replace(".venv/bin/", bin_dir)
        return re.sub(r"(?m)^(\s*)python3? ", rf"\g<1>{sys.executable} ", text)

    def result(self, readme: str, target: RunnableBlock) -> Ran:
        for runnable in self.blocks[readme]:
            key = (readme, runnable.block.line)
            if key not in self.results:
                self.results[key] = self._run(readme, runnable)
            if runnable is target:
                return self.results[key]
        raise AssertionError(f"{target.block.where} is not a run block")

    def _run(self, readme: str, runnable: RunnableBlock) -> Ran:
        folder = self.root / readme.replace("/", "_")
        if not folder.exists():
            # Blocks are written to run from the repository root: the folder mirrors it by
            # links, so what they write stays out of the checkout.
            folder.mkdir()
            for entry in REPO.iterdir():
                if entry.name != ".git":
                    (folder / entry.name).symlink_to(entry)
        block = runnable.block
        script = folder / f"block-{block.line}.{'py' if block.language == 'python' else 'sh'}"
        script.write_text(self.rewrite(block.text))
        argv = (
            [sys.executable, str(script)]
            if block.language == "python"
            else ["bash", "-e", "-o", "pipefail", str(script)]
        )
        # A reader's shell: no gateway or RunPod settings beyond what the block itself sets.
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("VOXTRAL_", "RUNPOD_")) or name.startswith("VOXTRAL_TEST_")
        }
        # Output to a file, not a pipe: a background process the block starts must not keep us
        # waiting for EOF. Its own session, so whatever it leaves behind is stopped below.
        log, errors = folder / f"block-{block.line}.out", folder / f"block-{block.line}.err"
        with log.open("w") as out, errors.open("w") as err:
            process = subprocess.Popen(
                argv, cwd=folder, env=env, stdout=out, stderr=err, start_new_session=True
            )
            try:
                returncode = process.wait(timeout=BLOCK_TIMEOUT_S)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return Ran(returncode, log.read_text(), errors.read_text())


# --- comparing ----------------------------------------------------------------------------


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).strip()


def _shape(value: Any) -> Any:
    """JSON value -> its key structure: dicts by key, lists by their first item, leaves by type."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def assert_output_matches(runnable: RunnableBlock, actual: str) -> None:
    """Every check the ```output block's info string names (`wer=`, `shape`); exact if none."""
    expected = runnable.expected
    assert expected is not None
    where = f"{runnable.block.where} (expected output at {expected.where})"
    wer = expected.option("wer")
    shape = expected.option("shape") is not None
    if wer is not None:
        error = jiwer.wer(_words(expected.text), _words(actual) or "<empty>")
        assert error <= float(wer), f"{where}: WER {error:.3f} > {wer}:\n{actual}"
    if shape:
        assert_same_shape(expected.text, actual, where)
    if wer is None and not shape:
        assert actual.strip() == expected.text.strip(), f"{where}: output differs:\n{actual}"


def assert_same_shape(shown: str, actual: str, where: str) -> None:
    """JSON: the same keys, recursively. Otherwise SRT: the same number of cues."""
    try:
        shown_json = json.loads(shown)
    except ValueError:
        cues = list(srt.parse(shown))
        try:
            got = list(srt.parse(actual))
        except srt.SRTParseError:
            pytest.fail(f"{where}: the README shows SRT, the block printed:\n{actual}")
        assert len(got) == len(cues), f"{where}: {len(got)} cues, not {len(cues)}:\n{actual}"
        return
    try:
        got_json = json.loads(actual)
    except ValueError:
        pytest.fail(f"{where}: the README shows JSON, the block printed:\n{actual}")
    assert _shape(got_json) == _shape(shown_json), f"{where}: other JSON shape:\n{actual}"
