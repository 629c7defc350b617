"""Summaries of timed requests: throughput, latency percentiles, errors, WER.

RTFx is audio seconds transcribed per wall-clock second of the whole level (first send to last
answer), so it measures the server's throughput at that load, not one request's speed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from bench.accuracy import word_errors
from bench.client import RequestRecord

PERCENTILES = (50, 90, 99)


def distribution(values: Sequence[float]) -> dict[str, float] | None:
    """p50/p90/p99/mean/min/max (linear interpolation); None for no values."""
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    out = {f"p{p}": float(np.percentile(array, p)) for p in PERCENTILES}
    out.update(mean=float(array.mean()), min=float(array.min()), max=float(array.max()))
    return out


def summarize(records: Sequence[RequestRecord], wall_s: float) -> dict[str, object]:
    """One level's numbers; failed requests count as errors and add no audio seconds."""
    ok = [r for r in records if r.is_ok]
    audio_s = sum(r.audio_s for r in ok)
    errors = len(records) - len(ok)
    ttfts = [r.ttft_s for r in ok if r.ttft_s is not None]
    wer = word_errors([r.reference for r in ok], [r.text for r in ok])
    by_kind: dict[str, object] = {}
    for kind in sorted({r.kind for r in ok}):
        kind_ok = [r for r in ok if r.kind == kind]
        kind_wer = word_errors([r.reference for r in kind_ok], [r.text for r in kind_ok])
        by_kind[kind] = {
            "requests": len(kind_ok),
            "wer": kind_wer.wer if kind_wer else None,
            "latency_p50_s": float(np.median([r.latency_s for r in kind_ok])),
        }
    # Long files are few and each matters (10 min vs 60 min behave differently): list them.
    by_item: dict[str, object] = {}
    for item_id in sorted({r.item_id for r in records if r.kind == "long"}):
        item_records = [r for r in records if r.item_id == item_id]
        item_ok = [r for r in item_records if r.is_ok]
        item_wer = word_errors([r.reference for r in item_ok], [r.text for r in item_ok])
        by_item[item_id] = {
            "requests": len(item_records),
            "ok": len(item_ok),
            "latency_p50_s": float(np.median([r.latency_s for r in item_ok])) if item_ok else None,
            "wer": item_wer.wer if item_wer else None,
            "statuses": sorted({r.status for r in item_records}),
        }
    statuses: dict[str, int] = {}
    for record in records:
        statuses[str(record.status)] = statuses.get(str(record.status), 0) + 1
    return {
        "requests": len(records),
        "ok": len(ok),
        "errors": errors,
        "error_rate": errors / len(records) if records else 0.0,
        "statuses": statuses,
        "wall_s": wall_s,
        "audio_s": audio_s,
        "rtfx": audio_s / wall_s if wall_s > 0 else math.nan,
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else math.nan,
        "latency_s": distribution([r.latency_s for r in ok]),
        "ttft_s": distribution(ttfts),
        "wer": asdict(wer) if wer else None,
        "by_kind": by_kind,
        "by_item": by_item,
        "first_errors": [r.error for r in records if r.error][:3],
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
