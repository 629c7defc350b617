"""Summaries and ratios computed by bench/ from request records."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.client import RequestRecord, api_base
from bench.load import poisson_arrivals
from bench.runner import compute_ratios
from bench.stats import distribution, ratio, summarize


def _record(
    latency_s: float,
    *,
    ok: bool = True,
    audio_s: float = 10.0,
    kind: str = "clean",
    text: str = "hello world",
    ttft_s: float | None = None,
) -> RequestRecord:
    return RequestRecord(
        item_id="x",
        kind=kind,
        target="t",
        level=1,
        status=200 if ok else 503,
        is_ok=ok,
        start_s=0.0,
        latency_s=latency_s,
        ttft_s=ttft_s,
        audio_s=audio_s,
        text=text if ok else "",
        reference="hello world",
        error=None if ok else "overloaded",
    )


def test_distribution_percentiles_interpolate_linearly() -> None:
    dist = distribution([float(v) for v in range(1, 101)])
    assert dist is not None
    assert dist["p50"] == pytest.approx(50.5)
    assert dist["p90"] == pytest.approx(90.1)
    assert dist["p99"] == pytest.approx(99.01)
    assert (dist["min"], dist["max"], dist["mean"]) == (1.0, 100.0, 50.5)


def test_distribution_of_nothing_is_none() -> None:
    assert distribution([]) is None


def test_summary_counts_only_successful_audio_in_rtfx() -> None:
    records = [_record(1.0), _record(3.0), _record(0.1, ok=False)]
    summary = summarize(records, wall_s=4.0)
    assert summary["requests"] == 3
    assert summary["ok"] == 2
    assert summary["error_rate"] == pytest.approx(1 / 3)
    assert summary["statuses"] == {"200": 2, "503": 1}
    assert summary["audio_s"] == 20.0
    assert summary["rtfx"] == pytest.approx(5.0)
    assert summary["requests_per_s"] == pytest.approx(0.5)
    assert summary["latency_s"]["p50"] == pytest.approx(2.0)  # failures excluded
    assert summary["first_errors"] == ["overloaded"]


def test_summary_wer_and_ttft_and_kinds() -> None:
    records = [
        _record(1.0, text="hello world", ttft_s=0.2, kind="clean"),
        _record(2.0, text="hello", ttft_s=0.4, kind="noisy"),
    ]
    summary = summarize(records, wall_s=2.0)
    assert summary["wer"]["wer"] == pytest.approx(0.25)
    assert summary["ttft_s"]["p50"] == pytest.approx(0.3)
    assert summary["by_kind"]["clean"]["wer"] == 0.0
    assert summary["by_kind"]["noisy"]["wer"] == pytest.approx(0.5)


def test_summary_with_all_failures_has_no_latency_and_zero_throughput() -> None:
    summary = summarize([_record(1.0, ok=False)], wall_s=1.0)
    assert summary["latency_s"] is None
    assert summary["wer"] is None
    assert summary["rtfx"] == 0.0
    assert summary["error_rate"] == 1.0


def test_summary_zero_wall_time_is_nan_not_a_crash() -> None:
    assert math.isnan(summarize([], wall_s=0.0)["rtfx"])


def test_ratio_guards_missing_and_zero() -> None:
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(None, 1.0) is None
    assert ratio(1.0, 0.0) is None


def test_compute_ratios_divides_first_target_by_second_per_level() -> None:
    gw = summarize([_record(2.0, ttft_s=0.5)], wall_s=2.0)
    direct = summarize([_record(1.0, text="hello", ttft_s=0.25)], wall_s=1.0)
    levels = [
        {"target": "gateway", "level": 4, "summary": gw},
        {"target": "direct", "level": 4, "summary": direct},
    ]
    (row,) = compute_ratios(levels, ["gateway", "direct"])
    assert row["rtfx"] == pytest.approx(0.5)
    assert row["latency_p50"] == pytest.approx(2.0)
    assert row["ttft_p50"] == pytest.approx(2.0)
    assert row["wer_gateway"] == 0.0
    assert row["wer_direct"] == pytest.approx(0.5)
    assert row["wer_delta"] == pytest.approx(-0.5)


def test_compute_ratios_needs_two_targets() -> None:
    assert compute_ratios([], ["only"]) == []


def test_poisson_arrivals_are_seeded_sorted_and_near_the_rate() -> None:
    arrivals = poisson_arrivals(rate_per_s=5.0, duration_s=200.0, seed=3)
    assert arrivals == poisson_arrivals(rate_per_s=5.0, duration_s=200.0, seed=3)
    assert arrivals == sorted(arrivals)
    assert all(0 < t < 200.0 for t in arrivals)
    assert 900 < len(arrivals) < 1100  # mean 1000, sd ~32


@pytest.mark.parametrize("url", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"])
def test_api_base_accepts_with_or_without_v1(url: str) -> None:
    assert api_base(url) == "http://h:1"


def test_records_are_plain_data(tmp_path: Path) -> None:
    # results are written as JSON lines; a record must survive that round trip
    import dataclasses
    import json

    record = _record(1.0)
    assert RequestRecord(**json.loads(json.dumps(dataclasses.asdict(record)))) == record


def test_long_files_are_listed_one_by_one_with_their_statuses() -> None:
    def long_record(item_id: str, ok: bool) -> RequestRecord:
        base = _record(5.0, ok=ok, kind="long")
        return RequestRecord(**{**base.__dict__, "item_id": item_id})

    summary = summarize(
        [long_record("long-010min", True), long_record("long-060min", False)], wall_s=10.0
    )
    assert summary["by_item"]["long-010min"]["ok"] == 1
    assert summary["by_item"]["long-010min"]["latency_p50_s"] == 5.0
    assert summary["by_item"]["long-060min"] == {
        "requests": 1, "ok": 0, "latency_p50_s": None, "wer": None, "statuses": [503],
    }  # fmt: skip
    assert summarize([_record(1.0)], wall_s=1.0)["by_item"] == {}
