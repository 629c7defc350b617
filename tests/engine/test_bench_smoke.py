"""`python -m bench` end to end against the real CPU engine and the real gateway.

Asserts the report's structure and that its numbers are finite and positive; never speed
(speed is recorded in bench/results/, side by side in one run, not asserted in tests).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.corpus import build_corpus

pytestmark = pytest.mark.engine

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-corpus")
    build_corpus(out, long_minutes=[], short_kinds=["clean", "pauses"])
    return out


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--no-progress"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _is_positive(value: Any) -> bool:
    return isinstance(value, float | int) and math.isfinite(value) and value > 0


def _assert_level_summary(summary: dict[str, Any], *, expect_ttft: bool) -> None:
    assert summary["requests"] > 0
    assert summary["errors"] == 0, summary["first_errors"]
    assert summary["statuses"] == {"200": summary["requests"]}
    for key in ("wall_s", "audio_s", "rtfx", "requests_per_s"):
        assert _is_positive(summary[key]), (key, summary[key])
    for key in ("p50", "p90", "p99", "mean", "min", "max"):
        assert _is_positive(summary["latency_s"][key]), key
    assert summary["latency_s"]["p50"] <= summary["latency_s"]["p99"] <= summary["latency_s"]["max"]
    if expect_ttft:
        assert _is_positive(summary["ttft_s"]["p50"])
        assert summary["ttft_s"]["p50"] <= summary["latency_s"]["max"]
    else:
        assert summary["ttft_s"] is None
    # The tiny Voxtral writes gibberish: WER is defined and finite, its value means nothing.
    assert summary["wer"]["ref_words"] > 0
    assert math.isfinite(summary["wer"]["wer"])


def test_compare_gateway_vs_direct_writes_report_with_ratios(
    voxtral_engine, voxtral_gateway, corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "compare"
    done = _bench(
        "compare",
        "--gateway", voxtral_gateway.base_url,
        "--direct", voxtral_engine.base_url,
        "--corpus", str(corpus),
        "--limit", "6",
        "--concurrency", "1,3",
        "--direct-tokens-per-audio-s", "6",
        "--out", str(out),
    )  # fmt: skip
    assert str(out / "results.md") in done.stdout
    result = json.loads((out / "results.json").read_text())
    assert result["targets"] == ["gateway", "direct"]
    assert result["servers"]["direct"]["model"] == voxtral_engine.model
    assert result["rounds"] == 2
    assert [(e["target"], e["level"]) for e in result["levels"]] == [
        ("gateway", 1.0), ("direct", 1.0), ("gateway", 3.0), ("direct", 3.0),
    ]  # fmt: skip
    for entry in result["levels"]:
        assert entry["summary"]["requests"] == 12  # 6 files x 2 interleaved rounds
        _assert_level_summary(entry["summary"], expect_ttft=False)
    assert [r["level"] for r in result["ratios"]] == [1.0, 3.0]
    for row in result["ratios"]:
        for key in ("rtfx", "requests_per_s", "latency_p50", "latency_p99"):
            assert _is_positive(row[key]), (key, row[key])
    requests = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert len(requests) == 48
    # Every request to vLLM carried the proportional token cap; none went to the gateway.
    assert result["servers"]["direct"]["token_budget"]["tokens_per_audio_s"] == 6.0
    assert result["servers"]["gateway"]["token_budget"] is None
    for name in ("latency.png", "rtfx.png", "ratios.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    markdown = (out / "results.md").read_text()
    assert "python -m bench compare --gateway" in markdown
    assert "| gateway | 3 |" in markdown


def test_run_open_loop_streaming_records_time_to_first_delta(
    voxtral_engine, corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "open"
    _bench(
        "run",
        "--url", voxtral_engine.openai_base_url,
        "--corpus", str(corpus),
        "--kinds", "pauses",
        "--mode", "open",
        "--rate", "2",
        "--duration", "4",
        "--stream",
        "--max-tokens", "16",
        "--out", str(out),
    )  # fmt: skip
    result = json.loads((out / "results.json").read_text())
    assert result["mode"] == "open"
    assert result["level_unit"] == "requests/s offered"
    (entry,) = result["levels"]
    assert entry["summary"]["requests"] == result["requests_per_block"]["2"]
    _assert_level_summary(entry["summary"], expect_ttft=True)
    assert result["ratios"] == []
    assert not (out / "ratios.png").exists()
    assert result["machine"]["cpus_usable"] >= 1
