"""The READMEs' `run` blocks, run as a reader would, against the real CPU Whisper engine.

The marking convention and the address rewriting are in tests/readme_blocks.py. Each README's
blocks share one scratch folder and run in order (a block may use a file an earlier block made,
e.g. `speech.wav`); a test runs the earlier blocks first if they have not run yet, so one block
can be run alone with `-k`. Output is compared with the ```output block that follows: exactly,
by word error rate (`wer=`) or by shape (`shape`: JSON keys, or SRT cue count).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import pytest
import srt

from tests.fixtures.gateway import RunningGateway, free_port
from tests.readme_blocks import READMES, REPO, RunnableBlock, read_blocks, runnable_blocks

pytestmark = pytest.mark.engine

BLOCK_TIMEOUT_S = 300
_BLOCKS = {readme: runnable_blocks(read_blocks(readme)) for readme in READMES}
_ADDRESS = re.compile(r"127\.0\.0\.1:(\d+)")


@dataclass
class Ran:
    returncode: int
    output: str
    """stdout, what the ```output block shows."""
    errors: str
    """stderr, shown when the block fails."""


class ReadmeRunner:
    """Runs each README's blocks once, in order, in one scratch folder per README."""

    def __init__(self, root: Path, gateway: RunningGateway, engine_url: str) -> None:
        self.root = root
        self.ports = {
            "8001": gateway.base_url.rsplit(":", 1)[1],
            "8000": engine_url.rsplit(":", 1)[1],
        }
        self.results: dict[tuple[str, int], Ran] = {}

    def rewrite(self, text: str) -> str:
        """Documented addresses and the venv, made this test run's own."""
        ports = dict(self.ports)

        def address(match: re.Match[str]) -> str:
            port = ports.setdefault(match[1], str(free_port()))
            return f"127.0.0.1:{port}"

        text = _ADDRESS.sub(address, text)
        # The same ports given as flags (`--rp_api_port 8010`).
        for documented, port in ports.items():
            text = re.sub(rf"(?<![\d.:]){documented}(?!\d)", port, text)
        bin_dir = f"{Path(sys.executable).parent}/"
        text = text.replace(".venv/bin/", bin_dir)
        return re.sub(r"(?m)^(\s*)python3? ", rf"\g<1>{sys.executable} ", text)

    def result(self, readme: str, target: RunnableBlock) -> Ran:
        for runnable in _BLOCKS[readme]:
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
        env = dict(os.environ)
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


@pytest.fixture(scope="module")
def readme_runner(
    tmp_path_factory: pytest.TempPathFactory, whisper_gateway: RunningGateway, whisper_engine: Any
) -> ReadmeRunner:
    return ReadmeRunner(tmp_path_factory.mktemp("readme"), whisper_gateway, whisper_engine.base_url)


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
    expected = runnable.expected
    assert expected is not None
    where = f"{runnable.block.where} (expected output at {expected.where})"
    wer = expected.option("wer")
    if wer is not None:
        error = jiwer.wer(_words(expected.text), _words(actual) or "<empty>")
        assert error <= float(wer), f"{where}: WER {error:.3f} > {wer}:\n{actual}"
    elif expected.option("shape") is not None:
        try:
            shown = json.loads(expected.text)
        except ValueError:
            cues = list(srt.parse(expected.text))
            got = list(srt.parse(actual))
            assert len(got) == len(cues), (
                f"{where}: {len(got)} SRT cues, not {len(cues)}:\n{actual}"
            )
            return
        try:
            got = json.loads(actual)
        except ValueError:
            pytest.fail(f"{where}: the README shows JSON, the block printed:\n{actual}")
        assert _shape(got) == _shape(shown), f"{where}: other JSON shape:\n{actual}"
    else:
        assert actual.strip() == expected.text.strip(), f"{where}: output differs:\n{actual}"


_ALL = [(readme, runnable) for readme, found in _BLOCKS.items() for runnable in found]


@pytest.mark.parametrize(
    ("readme", "runnable"), _ALL, ids=[runnable.block.where for _, runnable in _ALL]
)
def test_readme_block_runs_and_prints_what_the_readme_shows(
    readme_runner: ReadmeRunner, readme: str, runnable: RunnableBlock
) -> None:
    ran = readme_runner.result(readme, runnable)
    assert ran.returncode == 0, (
        f"{runnable.block.where} exited {ran.returncode}:\n{ran.output[-2000:]}\n"
        f"stderr:\n{ran.errors[-4000:]}"
    )
    if runnable.expected is not None:
        assert_output_matches(runnable, ran.output)


def test_every_readme_has_run_blocks_where_it_shows_commands() -> None:
    """README.md's examples run: a README with none would test nothing."""
    assert _BLOCKS["README.md"], "README.md has no ```bash run / ```python run blocks"
