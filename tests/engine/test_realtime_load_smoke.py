"""`python -m bench.realtime_load` end to end: two live sessions through the real gateway's
`/v1/realtime` in front of the real CPU Whisper engine.

Asserts the report's structure and that its numbers are finite and ordered; never speed
(speed is recorded in bench/results/, not asserted in tests).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_two_realtime_sessions_report_every_turn(whisper_gateway, tmp_path: Path) -> None:
    out = tmp_path / "realtime"
    url = whisper_gateway.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.realtime_load",
            "--url", url,
            "--levels", "2",
            "--sentences", "2",
            "--chunk-ms", "50",
            "--processes", "2",  # one session per client process, as the GPU run deals them
            "--out", str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert report["chunk_ms"] == 50
    (level,) = report["levels"]
    assert level["sessions"] == 2
    assert level["errors"] == []
    # Every sentence of both sessions became one turn with its final text.
    assert level["completed"] == level["expected"] == 4
    for key in ("stopped_to_completed_s", "eos_to_completed_s", "eos_to_stopped_s"):
        dist = level[key]
        assert all(math.isfinite(dist[p]) for p in ("p50", "p99", "max")), key
        assert dist["p50"] <= dist["p99"] <= dist["max"], key
    # The server can only answer after speech ends; its VAD closes the turn only after that.
    assert level["eos_to_completed_s"]["min"] > 0
    assert level["eos_to_completed_s"]["p50"] >= level["stopped_to_completed_s"]["p50"]
    assert level["max_send_lag_s"]["max"] >= 0
    assert 0 < level["client_cpu_share"] < 1
    assert isinstance(level["holds"], bool)
    assert report["sessions_held"] in (0, 2)
    assert any("office" in t.lower() for t in level["sample_transcripts"])
    assert "python -m bench.realtime_load --url" in (out / "results.md").read_text()
