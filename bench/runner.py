"""Runs a measurement plan: levels x rounds x targets, and gathers the result.

With two targets the rounds alternate order (A then B, B then A, ...) on the same requests, so
slow drift of a shared machine (other jobs, thermal, caches) lands on both sides alike and the
ratios stay meaningful even when absolute numbers wander.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from tqdm import tqdm

from bench.client import AudioCache, Job, RequestRecord, Target, transcribe
from bench.load import poisson_arrivals, run_closed, run_open
from bench.stats import ratio, summarize


@dataclass(frozen=True)
class Plan:
    """What to measure. ``levels`` are concurrencies (closed) or request rates per s (open)."""

    mode: str
    levels: Sequence[float]
    jobs: Sequence[Job]
    rounds: int = 1
    duration_s: float = 60.0
    warmup_requests: int = 1
    seed: int = 0
    timeout_s: float = 600.0
    show_progress: bool = True

    @property
    def level_unit(self) -> str:
        return "concurrency" if self.mode == "closed" else "requests/s offered"

    def requests_per_block(self, level: float) -> int:
        if self.mode == "closed":
            return len(self.jobs)
        return len(poisson_arrivals(level, self.duration_s, self.seed))


async def _server_version(client: httpx.AsyncClient, target: Target) -> str | None:
    try:
        response = await client.get(f"{target.base_url.rstrip('/')}/version", timeout=10)
        if response.status_code == 200:
            return str(response.json().get("version"))
    except (httpx.HTTPError, ValueError):
        return None
    return None


async def execute(
    targets: Sequence[Target], plan: Plan
) -> tuple[dict[str, Any], list[RequestRecord]]:
    """Measure every target at every level; returns (result without metadata, all records)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(plan.timeout_s, connect=10.0)
    audio = AudioCache()
    all_records: list[RequestRecord] = []
    levels_out: list[dict[str, Any]] = []
    total = sum(plan.requests_per_block(level) for level in plan.levels)
    total *= plan.rounds * len(targets)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        servers = {}
        for target in targets:
            servers[target.name] = {
                **{k: v for k, v in asdict(target).items() if k != "headers"},
                "form": dict(target.form),
                "version": await _server_version(client, target),
            }
            for job in plan.jobs[: plan.warmup_requests]:
                await transcribe(client, target, job, audio.get(job.path), level=0, origin_s=0)
        bar = tqdm(total=total, unit="req", disable=not plan.show_progress)
        for level in plan.levels:
            per_target: dict[str, tuple[list[RequestRecord], float]] = {
                t.name: ([], 0.0) for t in targets
            }
            for round_index in range(plan.rounds):
                order = targets if round_index % 2 == 0 else list(reversed(targets))
                for target in order:
                    bar.set_description(f"{target.name} {plan.mode} {level:g}")
                    records, wall_s = await _run_block(client, target, plan, level, audio, bar)
                    kept, wall_total = per_target[target.name]
                    per_target[target.name] = (kept + records, wall_total + wall_s)
            for target in targets:
                records, wall_s = per_target[target.name]
                all_records += records
                levels_out.append(
                    {"target": target.name, "level": level, "summary": summarize(records, wall_s)}
                )
        bar.close()
    result: dict[str, Any] = {
        "mode": plan.mode,
        "level_unit": plan.level_unit,
        "targets": [t.name for t in targets],
        "servers": servers,
        "rounds": plan.rounds,
        "requests_per_block": {f"{lv:g}": plan.requests_per_block(lv) for lv in plan.levels},
        "levels": levels_out,
        "ratios": compute_ratios(levels_out, [t.name for t in targets]),
    }
    return result, all_records


async def _run_block(
    client: httpx.AsyncClient,
    target: Target,
    plan: Plan,
    level: float,
    audio: AudioCache,
    bar: tqdm,
) -> tuple[list[RequestRecord], float]:
    if plan.mode == "closed":
        return await run_closed(client, target, plan.jobs, int(level), audio, on_done=bar.update)
    return await run_open(
        client, target, plan.jobs, level, plan.duration_s, audio, seed=plan.seed, on_done=bar.update
    )


def compute_ratios(
    levels: Sequence[dict[str, Any]], targets: Sequence[str]
) -> list[dict[str, Any]]:
    """First target over second, per level; empty unless exactly two targets."""
    if len(targets) != 2:
        return []
    a, b = targets
    by_key = {(entry["target"], entry["level"]): entry["summary"] for entry in levels}
    out = []
    for level in sorted({entry["level"] for entry in levels}):
        sa, sb = by_key[(a, level)], by_key[(b, level)]

        def pct(summary: dict[str, Any], key: str, name: str) -> float | None:
            return (summary.get(key) or {}).get(name)

        wer_a = (sa["wer"] or {}).get("wer")
        wer_b = (sb["wer"] or {}).get("wer")
        out.append(
            {
                "level": level,
                "rtfx": ratio(sa["rtfx"], sb["rtfx"]),
                "requests_per_s": ratio(sa["requests_per_s"], sb["requests_per_s"]),
                "latency_p50": ratio(pct(sa, "latency_s", "p50"), pct(sb, "latency_s", "p50")),
                "latency_p99": ratio(pct(sa, "latency_s", "p99"), pct(sb, "latency_s", "p99")),
                "ttft_p50": ratio(pct(sa, "ttft_s", "p50"), pct(sb, "ttft_s", "p50")),
                f"wer_{a}": wer_a,
                f"wer_{b}": wer_b,
                "wer_delta": None if wer_a is None or wer_b is None else wer_a - wer_b,
                "error_rate_" + a: sa["error_rate"],
                "error_rate_" + b: sb["error_rate"],
            }
        )
    return out


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
