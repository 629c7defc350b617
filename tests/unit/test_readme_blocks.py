"""The README block machinery itself: parsing, address rewriting, running, output comparison."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.readme_blocks import (
    Block,
    ReadmeRunner,
    RunnableBlock,
    assert_output_matches,
    read_blocks,
    runnable_blocks,
)

SRT_ONE_CUE = "1\n00:00:00,000 --> 00:00:02,000\nPlease call the office.\n"


def _runnable(text: str, expected: str, info: tuple[str, ...] = ()) -> RunnableBlock:
    return RunnableBlock(
        Block("README.md", 1, "bash", ("run",), text),
        Block("README.md", 5, "output", info, expected),
    )


def test_readme_blocks_are_found_with_their_marks_and_outputs() -> None:
    blocks = read_blocks("README.md")
    runnable = runnable_blocks(blocks)
    assert runnable, "README.md has no run blocks"
    assert all(r.block.mode == "run" for r in runnable)
    srt_block = next(r for r in runnable if "response_format=srt" in r.block.text)
    assert srt_block.expected is not None and srt_block.expected.option("wer") == "0.1"


def test_rewrite_maps_documented_ports_everywhere_in_a_block(tmp_path: Path) -> None:
    runner = ReadmeRunner(tmp_path, {}, {"8001": "41001", "8000": "41000"})
    text = runner.rewrite(
        "curl 127.0.0.1:8001/health\n"
        "  python serve.py --upstream http://127.0.0.1:8000 --port 8010 &\n"
        "curl 127.0.0.1:8010/x\n.venv/bin/voxtral-gateway --help\n"
    )
    assert "127.0.0.1:41001/health" in text and "http://127.0.0.1:41000" in text
    (port,) = set(re.findall(r"--port (\d+)", text))
    assert port != "8010" and f"127.0.0.1:{port}/x" in text
    assert f"  {sys.executable} serve.py" in text
    assert f"{Path(sys.executable).parent}/voxtral-gateway" in text


def test_runner_reports_failure_and_does_not_wait_for_background_jobs(tmp_path: Path) -> None:
    failing = RunnableBlock(
        Block("X.md", 1, "bash", ("run",), "echo before\nfalse\necho after\n"), None
    )
    background = RunnableBlock(Block("X.md", 9, "bash", ("run",), "sleep 600 &\necho done\n"), None)
    runner = ReadmeRunner(tmp_path, {"X.md": [failing, background]}, {})
    ran = runner.result("X.md", failing)
    assert (ran.returncode, ran.output) == (1, "before\n")
    ran = runner.result("X.md", background)
    assert (ran.returncode, ran.output) == (0, "done\n")


@pytest.mark.parametrize(
    ("info", "expected", "actual"),
    [
        ((), "Please call the office.", "Please call the office!"),
        (("wer=0.1",), "please call the office before noon", "please call the house"),
        (("shape",), '{"text": "a", "usage": {"seconds": 1}}', '{"text": "a"}'),
        (("shape",), '{"output": [{"text": "a"}]}', '{"output": [{"words": "a"}]}'),
        (
            ("wer=0.5", "shape"),
            SRT_ONE_CUE,
            SRT_ONE_CUE + "\n2\n00:00:02,000 --> 00:00:03,000\nx\n",
        ),
        (("shape",), SRT_ONE_CUE, "not subtitles"),
    ],
)
def test_output_comparison_catches_a_difference(
    info: tuple[str, ...], expected: str, actual: str
) -> None:
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        assert_output_matches(_runnable("true\n", expected, info), actual)


@pytest.mark.parametrize(
    ("info", "expected", "actual"),
    [
        ((), "Please call the office.\n", "Please call the office.\n"),
        (
            ("wer=0.2",),
            "please call the office before noon",
            "Please, call the office before moon.",
        ),
        (
            ("shape",),
            '{"id": "x", "output": [{"text": "a"}]}',
            '{"id": "y", "output": [{"text": "b"}]}',
        ),
        (("wer=0.1", "shape"), SRT_ONE_CUE, SRT_ONE_CUE),
    ],
)
def test_output_comparison_accepts_a_match(
    info: tuple[str, ...], expected: str, actual: str
) -> None:
    assert_output_matches(_runnable("true\n", expected, info), actual)
