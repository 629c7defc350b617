r"""10x overload of a running gateway: admitted latency vs unloaded, statuses, gateway memory.

    python -m bench.overload --gateway http://127.0.0.1:8001 --gateway-pid PID \
        --clip .gpu/p2/overhead-clip.wav --capacity 8 --seconds 60 --out DIR

--capacity must equal the gateway's VOXTRAL_MAX_IN_FLIGHT_REQUESTS (one worker): the bench
cannot set it, only record it and the peak voxtral_in_flight_requests it sees on /metrics.
Unloaded phase: 1 client, 3 warm-ups then --unloaded-requests back to back. Overload phase:
--clients closed loops (default 10x capacity) for --seconds, each retrying 50 ms after a 429.
Meanwhile the RSS of the process tree at --gateway-pid is sampled every 0.1 s; afterwards the
admission gauges on /metrics must read 0. The overload clients run in --client-processes
processes (default: one per CPU this process may use; pin it with taskset to cores of its own),
each with its own event loop; "client CPU" near 100 % of a core per process means the load
generator, not the gateway, set the pace. Writes DIR/results.json and DIR/results.md, prints
one summary line, asserts nothing: judge the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.client import TRANSCRIPTIONS_PATH, api_base
from bench.overload_client import (
    ADMISSION_GAUGES,
    WARMUP,
    GatewayProcess,
    Outcome,
    RssSampler,
    encode_form,
    gauge,
    overload_processes,
    unloaded,
)
from bench.report import describe_machine, markdown_header
from bench.stats import distribution, ratio


def _seconds(outcomes: list[Outcome], status: int) -> list[float]:
    return [seconds for s, seconds in outcomes if s == status]


def _p(latency: dict[str, float] | None, key: str) -> float | None:
    return latency[key] if latency else None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    base = api_base(args.gateway)
    url = base + TRANSCRIPTIONS_PATH
    metrics_url = args.metrics or base + "/metrics"
    model = args.model or httpx.get(base + "/v1/models", trust_env=False).json()["data"][0]["id"]
    body, content_type = encode_form(args.clip.read_bytes(), model)
    clients = args.clients or 10 * args.capacity
    processes = min(args.client_processes or len(os.sched_getaffinity(0)), clients)
    gateway = GatewayProcess(args.gateway_pid)

    cpu_start_s = gateway.cpu_s()
    baseline = asyncio.run(unloaded(url, body, content_type, args.unloaded_requests))
    cpu_per_admitted_s = (gateway.cpu_s() - cpu_start_s) / (args.unloaded_requests + WARMUP)

    rss_before_mb = gateway.rss_mb()
    cpu_before_s = gateway.cpu_s()
    sampler = RssSampler(gateway, metrics_url)
    sampler.start()
    outcomes, wall_s, client_cpu_s = overload_processes(
        url, body, content_type, clients, args.seconds, processes
    )
    sampler.stop_event.set()
    sampler.join()
    cpu_overload_s = gateway.cpu_s() - cpu_before_s

    try:
        metrics = httpx.get(metrics_url, trust_env=False, timeout=10).text
    except httpx.HTTPError:
        metrics = ""
    admitted, refused = _seconds(outcomes, 200), len(_seconds(outcomes, 429))
    other: dict[str, int] = {}
    for status, _ in outcomes:
        if status not in (200, 429):
            other[str(status)] = other.get(str(status), 0) + 1
    # A refusal's cost: the overload CPU less what the admitted requests cost unloaded.
    refusals_cpu_s = cpu_overload_s - cpu_per_admitted_s * len(admitted)
    per_429_ms = round(1000 * refusals_cpu_s / refused, 3) if refused else None
    unloaded_s = distribution(_seconds(baseline, 200))
    admitted_s = distribution(admitted)
    p99_ratio = ratio(_p(admitted_s, "p99"), _p(unloaded_s, "p99"))
    return {
        "model": model,
        "capacity": args.capacity,
        "clients": clients,
        "seconds": args.seconds,
        "body_bytes": len(body),
        "unloaded": {
            "requests": len(baseline),
            "not_200": len(baseline) - len(_seconds(baseline, 200)),
            "latency_s": unloaded_s,
        },
        "overload": {
            "wall_s": round(wall_s, 2),
            "ok_200": len(admitted),
            "refused_429": refused,
            "other": other,  # -429: a 429 not in OpenAI's shape or without Retry-After >= 1
            "admitted_latency_s": admitted_s,
        },
        "p99_ratio": p99_ratio,
        "p50_ratio": ratio(_p(admitted_s, "p50"), _p(unloaded_s, "p50")),
        "peak_in_flight_seen": sampler.peak_in_flight,
        "gateway_rss_mb": {"before": round(rss_before_mb, 1), "peak": round(sampler.peak_mb, 1)},
        "gateway_cpu_ms": {
            "per_admitted": round(1000 * cpu_per_admitted_s, 3),
            "per_429": per_429_ms,
        },
        "client_processes": processes,
        # Summed over the client processes: up to 100 % x client_processes.
        "client_cpu_percent_of_one_core": round(100 * client_cpu_s / wall_s, 1),
        "gauges_after": {name: gauge(metrics, name) for name in ADMISSION_GAUGES},
    }


def _f(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def summary(r: dict[str, Any]) -> str:
    o, u = r["overload"], r["unloaded"]["latency_s"] or {}
    a = o["admitted_latency_s"] or {}
    other = sum(o["other"].values())
    gauges = "0" if all(v == 0 for v in r["gauges_after"].values()) else r["gauges_after"]
    return (
        f"OVERLOAD: {r['clients']} clients vs capacity {r['capacity']} for {r['seconds']:g} s; "
        f"{o['ok_200']} x 200, {o['refused_429']} x 429, {other} other; p99 admitted "
        f"{_f(a.get('p99'), '.3f')} s vs unloaded {_f(u.get('p99'), '.3f')} s "
        f"({_f(r['p99_ratio'], '.2f')}x; p50 {_f(a.get('p50'), '.3f')} vs "
        f"{_f(u.get('p50'), '.3f')} s); gateway RSS {r['gateway_rss_mb']['before']:.0f} MB "
        f"before, peak {r['gateway_rss_mb']['peak']:.0f} MB; gateway CPU "
        f"{r['gateway_cpu_ms']['per_admitted']:.1f} ms per admitted, "
        f"{_f(r['gateway_cpu_ms']['per_429'], '.2f')} ms per 429; gauges after {gauges}; "
        f"peak in-flight seen {_f(r['peak_in_flight_seen'], 'g')}; client CPU "
        f"{r['client_cpu_percent_of_one_core']:.0f} % of a core over "
        f"{r['client_processes']} processes"
    )


def render(r: dict[str, Any], command: str, machine: dict[str, Any], notes: list[str]) -> str:
    o, u = r["overload"], r["unloaded"]["latency_s"] or {}
    a = o["admitted_latency_s"] or {}
    ratio_text = _f(r["p99_ratio"], ".2f")
    within = "yes" if r["p99_ratio"] is not None and r["p99_ratio"] <= 2 else "no"
    lines = [
        *markdown_header("10x overload (`bench/overload.py`)", command, machine, notes),
        f"Capacity {r['capacity']} (the gateway's VOXTRAL_MAX_IN_FLIGHT_REQUESTS, as given; peak "
        f"voxtral_in_flight_requests seen: {_f(r['peak_in_flight_seen'], 'g')}), "
        f"{r['clients']} closed-loop clients for {r['seconds']:g} s, model {r['model']}. "
        f"Unloaded: 1 client, {r['unloaded']['requests']} requests after {WARMUP} warm-ups "
        f"({r['unloaded']['not_200']} not 200).",
        "",
        "| 200s | 429s | other | p99 admitted / unloaded | p50 admitted / unloaded "
        "| gateway RSS before / peak | gateway CPU per admitted / per 429 |",
        "|---|---|---|---|---|---|---|",
        f"| {o['ok_200']} | {o['refused_429']} | {sum(o['other'].values())} {o['other'] or ''} "
        f"| {_f(a.get('p99'), '.3f')} / {_f(u.get('p99'), '.3f')} s (**{ratio_text}x**) "
        f"| {_f(a.get('p50'), '.3f')} / {_f(u.get('p50'), '.3f')} s "
        f"| {r['gateway_rss_mb']['before']:.0f} / {r['gateway_rss_mb']['peak']:.0f} MB "
        f"| {r['gateway_cpu_ms']['per_admitted']:.1f} / "
        f"{_f(r['gateway_cpu_ms']['per_429'], '.2f')} ms |",
        "",
        f"p99 within 2x of unloaded: {within}. Admission gauges after the run: "
        + ", ".join(f"{k} {_f(v, 'g')}" for k, v in r["gauges_after"].items())
        + f". Client CPU: {r['client_cpu_percent_of_one_core']:.0f} % of one core, summed over "
        f"{r['client_processes']} client processes.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.overload",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gateway", required=True, help="the gateway's base URL")
    parser.add_argument("--gateway-pid", type=int, required=True, help="for RSS and CPU")
    parser.add_argument("--clip", type=Path, required=True, help="the WAV every request sends")
    parser.add_argument(
        "--capacity", type=int, required=True, help="= the gateway's VOXTRAL_MAX_IN_FLIGHT_REQUESTS"
    )
    parser.add_argument("--clients", type=int, default=None, help="default: 10 x capacity")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=None,
        help="overload client processes; default: CPUs this process may use, at most --clients",
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--unloaded-requests", type=int, default=40)
    parser.add_argument("--model", default=None, help="default: the gateway's first model")
    parser.add_argument("--metrics", default=None, help="default: GATEWAY/metrics")
    parser.add_argument("--out", type=Path, default=None, help="writes results.json/.md here")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args(argv)
    result = measure(args)
    print(summary(result))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python -m bench.overload " + shlex.join(sys.argv[1:] if argv is None else argv)
        machine = describe_machine()
        (args.out / "results.json").write_text(
            json.dumps({"command": command, "machine": machine, **result}, indent=2) + "\n"
        )
        (args.out / "results.md").write_text(render(result, command, machine, args.note))


if __name__ == "__main__":
    main()
