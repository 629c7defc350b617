"""Writes a bench result: results.json, requests.jsonl, PNG plots and results.md.

results.md carries the exact command and the machine, so a number quoted elsewhere can be
traced to how it was made and rerun.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.client import RequestRecord
from bench.plots import plot_all


def describe_machine() -> dict[str, Any]:
    """CPU model and count, memory, OS, Python, and GPUs if nvidia-smi answers."""
    cpu_model = platform.processor() or ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True, check=False, timeout=20)
        gpus = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return {
        "cpu_model": cpu_model,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem_gib,
        "gpus": gpus,
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def markdown_header(
    title: str, command: str, machine: dict[str, Any], notes: Sequence[str]
) -> list[str]:
    """A small bench's results.md opening: title, the exact command, machine, notes."""
    return [
        f"# {title}",
        "",
        "```",
        command,
        "```",
        "",
        f"Machine: {machine.get('cpu_model')}, {machine.get('cpus_usable')} CPUs usable, "
        f"load average {machine.get('load_average_1_5_15')}, GPUs {machine.get('gpus') or 'none'}.",
        *notes,
        "",
    ]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _summary_table(result: dict[str, Any]) -> list[str]:
    unit = result["level_unit"]
    lines = [
        f"| target | {unit} | requests | errors | RTFx | req/s | p50 s | p90 s | p99 s "
        "| TTFT p50 s | WER |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in result["levels"]:
        s = entry["summary"]
        lat, ttft, wer = s["latency_s"] or {}, s["ttft_s"] or {}, s["wer"] or {}
        lines.append(
            f"| {entry['target']} | {entry['level']:g} | {s['requests']} | {s['errors']} "
            f"| {_fmt(s['rtfx'])} | {_fmt(s['requests_per_s'])} | {_fmt(lat.get('p50'))} "
            f"| {_fmt(lat.get('p90'))} | {_fmt(lat.get('p99'))} | {_fmt(ttft.get('p50'))} "
            f"| {_fmt(wer.get('wer'))} |"
        )
    return lines


def _ratio_table(result: dict[str, Any]) -> list[str]:
    a, b = result["targets"][:2]
    lines = [
        f"Ratios {a} / {b} (same requests, blocks interleaved {a}/{b} then {b}/{a}):",
        "",
        f"| {result['level_unit']} | RTFx | req/s | p50 latency | p99 latency | TTFT p50 "
        f"| WER {a} | WER {b} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["ratios"]:
        lines.append(
            f"| {r['level']:g} | {_fmt(r['rtfx'])} | {_fmt(r['requests_per_s'])} "
            f"| {_fmt(r['latency_p50'])} | {_fmt(r['latency_p99'])} | {_fmt(r['ttft_p50'])} "
            f"| {_fmt(r['wer_' + a])} | {_fmt(r['wer_' + b])} |"
        )
    return lines


def _item_table(result: dict[str, Any]) -> list[str]:
    rows = [
        f"| {entry['target']} | {entry['level']:g} | {item_id} | {item['ok']}/{item['requests']} "
        f"| {item['statuses']} | {_fmt(item['latency_p50_s'])} | {_fmt(item['wer'])} |"
        for entry in result["levels"]
        for item_id, item in (entry["summary"].get("by_item") or {}).items()
    ]
    if not rows:
        return []
    head = [
        "Long files:",
        "",
        f"| target | {result['level_unit']} | item | ok | HTTP statuses | p50 s | WER |",
        "|---|---|---|---|---|---|---|",
    ]
    return [*head, *rows, ""]


def render_markdown(result: dict[str, Any], plots: Sequence[Path]) -> str:
    machine = result["machine"]
    lines = [
        f"# Bench: {result['name']}",
        "",
        f"Created {result['created_utc']} with:",
        "",
        "```",
        result["command"],
        "```",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpus_usable']} usable CPUs, "
        f"{machine['memory_gib']} GiB RAM, GPUs: {', '.join(machine['gpus']) or 'none'}; "
        f"load average {machine.get('load_average_1_5_15')} when written; "
        f"{machine['os']}, Python {machine['python']}.",
        "",
        "Servers:",
        "",
    ]
    for name, server in result["servers"].items():
        lines.append(
            f"- **{name}**: `{server['base_url']}`, model `{server['model']}`, "
            f"form fields {server['form']}, stream={server['is_stream']}, "
            f"token budget {server.get('token_budget') or 'none'}, "
            f"version {server.get('version') or '?'}"
        )
    corpus = result["corpus"]
    lines += [
        "",
        f"Corpus: {corpus['files']} files ({corpus['audio_s']:.0f} s of audio; kinds "
        f"{', '.join(corpus['kinds'])}) from `{corpus['dir']}`, "
        f"mode {result['mode']}, {result['rounds']} round(s) per level; requests per block "
        f"by level: {result['requests_per_block']}.",
        "",
        *_summary_table(result),
        "",
    ]
    if result.get("ratios"):
        lines += [*_ratio_table(result), ""]
    lines += _item_table(result)
    if result.get("notes"):
        lines += ["Notes:", "", *[f"- {note}" for note in result["notes"]], ""]
    lines += [f"![{path.stem}]({path.name})" for path in plots]
    return "\n".join(lines) + "\n"


def write_result(
    result: dict[str, Any], records: Sequence[RequestRecord], out_dir: Path
) -> list[Path]:
    """Writes every output file into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    requests_path = out_dir / "requests.jsonl"
    with requests_path.open("w") as fh:
        for record in records:
            fh.write(json.dumps(asdict(record)) + "\n")
    plots = plot_all(result, out_dir)
    md_path = out_dir / "results.md"
    md_path.write_text(render_markdown(result, plots))
    return [json_path, requests_path, *plots, md_path]
