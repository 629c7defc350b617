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

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READMES = ("README.md", "serve/README.md", "runpod/README.md")
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})
CODE_LANGUAGES = SHELL_LANGUAGES | {"python"}
MODES = frozenset({"run", "check"})

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
