"""bench/realtime_load.py's report: the markdown table, the machine line, the engine's floor."""

from __future__ import annotations

import json
import os
import platform
import urllib.request
from typing import Any

from bench.realtime_streams import Stream


def _engine_alone_line(report: dict[str, Any]) -> list[str]:
    before, after = report.get("engine_alone_before_s"), report.get("engine_alone_after_s")
    if not before or not after:
        return []
    return [
        f"Engine alone, one sentence at a time over HTTP, same audio (ms): before p50 "
        f"{before['p50'] * 1000:.0f} / p99 {before['p99'] * 1000:.0f}, after p50 "
        f"{after['p50'] * 1000:.0f} / p99 {after['p99'] * 1000:.0f}.",
        "",
    ]


def render_markdown(report: dict[str, Any]) -> str:
    def ms(dist: dict[str, float] | None, key: str) -> str:
        return f"{dist[key] * 1000:.0f}" if dist else "-"

    lines = [
        "# Realtime sessions at real-time pace (`/v1/realtime`, server VAD)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']}. {report['note']}".rstrip(),
        "",
        f"URL {report['url']}; {report['sentences']} sentences per session "
        f"({report['stream_s']:.1f} s of audio), {report['chunk_ms']} ms chunks, VAD silence "
        f"{report['silence_ms']} ms, starts spread over {report['ramp_s']} s. A level holds "
        f"when every session keeps real time (every chunk sent within "
        f"{report['max_send_lag_s']} s of being spoken, every sentence completed) and p99 end "
        f"of speech -> completed <= {report['max_p99_s']} s.",
        "",
        *_engine_alone_line(report),
        "| sessions | completed | stopped->completed p50 | p99 | end of speech->completed "
        "p50 | p99 | end of speech->stopped p50 | start->first delta p50 | max send lag p99 "
        "| behind | client CPU | holds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in report["levels"]:
        stop, eos = level["stopped_to_completed_s"], level["eos_to_completed_s"]
        lines.append(
            f"| {level['sessions']} | {level['completed']}/{level['expected']} "
            f"| {ms(stop, 'p50')} | {ms(stop, 'p99')} | {ms(eos, 'p50')} | {ms(eos, 'p99')} "
            f"| {ms(level['eos_to_stopped_s'], 'p50')} "
            f"| {ms(level['start_to_first_delta_s'], 'p50')} "
            f"| {ms(level['max_send_lag_s'], 'p99')} | {level['sessions_behind']} "
            f"| {level['client_cpu_share']:.0%} | {'yes' if level['holds'] else 'no'} |"
        )
    held = report["sessions_held"]
    lines += [
        "",
        f"Sessions held at real time: **{held}**"
        + (" (the largest level tried)" if held == report["largest_level"] else ""),
        "",
        "Times in milliseconds on the client's clock. `client CPU`: the busiest client process's "
        "CPU time over its wall time (near 100% = one core busy: its timings are suspect).",
    ]
    errors = [e for level in report["levels"] for e in level["errors"]]
    if errors:
        lines += ["", "First errors:", "", *[f"- `{e}`" for e in errors[:5]]]
    return "\n".join(lines) + "\n"


def engine_alone(engine_url: str, stream: Stream) -> dict[str, float] | None:
    """The engine's own time per sentence of `stream` (bench/realtime_latency.py's rule)."""
    from bench.realtime_latency import engine_baseline

    with urllib.request.urlopen(f"{engine_url}/v1/models", timeout=10) as response:  # noqa: S310
        model = json.load(response)["data"][0]["id"]
    return engine_baseline(engine_url, model, stream)  # type: ignore[arg-type]


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.node()}, {os.cpu_count()} CPUs, load average at start {load}"
