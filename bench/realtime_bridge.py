"""The gateway's realtime bridge and vLLM's own `/v1/realtime`, side by side in one run.

    python -m bench.realtime_bridge \
        --gateway ws://127.0.0.1:8001/v1/realtime?intent=transcription \
        --direct ws://127.0.0.1:8000/v1/realtime [--model NAME] \
        [--levels 1,8,32,64] [--utterances 5] [--chunk-ms 80] [--seed-dir DIR] --out DIR

Each level opens N pairs of sessions at once: one to the gateway (OpenAI protocol, turn
detection off, the client commits each utterance), one straight to the engine (vLLM's protocol:
commit, appends, `commit {final: true}`). Both halves of a pair start together and send the
same utterances at real-time pace (`--chunk-ms` chunks by the wall clock): the gateway half as
24 kHz PCM16, the direct half as the very 16 kHz samples the gateway's soxr resampler makes of
them, so a deterministic engine writes the same text both ways. Per utterance (the first of
each session is a warm-up, not counted: the bridge opens its engine socket there):

- audio start -> first delta (non-empty), end of audio -> done (`completed` / `transcription.done`);
- added per delta: for the k-th delta of an utterance whose text matches on both halves, its
  time through the gateway minus its time direct; likewise for the first delta and for done.

The utterances follow each other with the stream's pauses; a session whose previous
`done` came late starts the next utterance late (recorded as lag). Results: OUT/results.*.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shlex
import sys
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import websockets

from bench.corpus import resample
from bench.realtime_report import machine
from bench.realtime_streams import (
    OPENAI_RATE_HZ,
    RATE_HZ,
    append_events,
    build_stream,
    espeak_utterances,
    load_seed,
)
from bench.stats import distribution
from voxtral_gateway.pipeline.pcm16 import from_pcm16, to_pcm16

COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
LEAD_S, TAIL_S = 0.3, 0.5  # silence around each utterance, as a VAD turn would carry
TIMEOUT_S = 60.0
MAX_VARIANTS = 8


@dataclass(frozen=True)
class Utterance:
    gateway_events: list[str]
    direct_events: list[str | None]
    """One per gateway event, sent at the same moment; None where soxr gave no samples yet."""
    pause_s: float


@dataclass
class Heard:
    """One utterance on one half: delta arrival times (s after its audio started) and text."""

    deltas: list[tuple[float, str]] = field(default_factory=list)
    done_s: float | None = None
    audio_s: float = 0.0


@dataclass
class HalfResult:
    utterances: list[Heard] = field(default_factory=list)
    start_lag_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def make_utterances(
    voices: list[tuple[np.ndarray, str]], count: int, chunk_ms: int, variant: int
) -> list[Utterance]:
    """`count` utterances with silence around them, as both halves will send them."""
    stream = build_stream(voices, count, offset=3 * variant, seed=variant)
    resampler = soxr.ResampleStream(OPENAI_RATE_HZ, RATE_HZ, 1, dtype="float32")
    out = []
    for index, (start_s, end_s) in enumerate(stream.spans):
        clip = stream.samples[int((start_s - LEAD_S) * RATE_HZ) : int((end_s + TAIL_S) * RATE_HZ)]
        gateway_events = append_events(
            resample(clip, RATE_HZ, OPENAI_RATE_HZ), OPENAI_RATE_HZ, chunk_ms
        )
        # The gateway's own path: PCM16 in, soxr stream to 16 kHz, PCM16 to the engine.
        direct_events: list[str | None] = []
        for event in gateway_events:
            pcm = base64.b64decode(json.loads(event)["audio"])
            samples = resampler.resample_chunk(from_pcm16(pcm))
            direct_events.append(_append(samples) if len(samples) else None)
        next_start = stream.spans[index + 1][0] if index + 1 < len(stream.spans) else end_s + 1
        out.append(Utterance(gateway_events, direct_events, max(0.0, next_start - end_s - 0.8)))
    return out


def _append(samples: np.ndarray) -> str:
    audio = base64.b64encode(to_pcm16(samples).tobytes()).decode("ascii")
    return json.dumps({"type": "input_audio_buffer.append", "audio": audio})


async def run_half(
    url: str, utterances: list[Utterance], chunk_s: float, *, direct: bool, model: str | None
) -> HalfResult:
    result = HalfResult()
    done_kind = "transcription.done" if direct else COMPLETED
    delta_kind = "transcription.delta" if direct else DELTA
    try:
        async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
            await ws.recv()  # session.created
            if direct:
                await ws.send(json.dumps({"type": "session.update", "model": model}))
            else:
                await ws.send(json.dumps(_manual_session()))
                await ws.recv()  # session.updated
            current: list[Heard] = []
            finished = asyncio.Event()
            started_at = [0.0]

            async def _read() -> None:
                async for raw in ws:
                    event, now = json.loads(raw), time.monotonic()
                    kind = event.get("type")
                    if kind == delta_kind and current and event.get("delta"):
                        current[0].deltas.append((now - started_at[0], event["delta"]))
                    elif kind == done_kind and current:
                        current[0].done_s = now - started_at[0] - current[0].audio_s
                        finished.set()
                    elif kind == "error" or str(kind).endswith(".failed"):
                        result.errors.append(json.dumps(event)[:300])
                        finished.set()

            reader = asyncio.create_task(_read())
            try:
                planned = time.monotonic()
                for utterance in utterances:
                    events = utterance.direct_events if direct else utterance.gateway_events
                    result.start_lag_s = max(result.start_lag_s, time.monotonic() - planned)
                    heard = Heard(audio_s=len(utterance.gateway_events) * chunk_s)
                    current[:] = [heard]
                    finished.clear()
                    if direct:
                        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                    t0 = started_at[0] = time.monotonic()
                    await _paced(ws, events, t0, chunk_s)
                    final = {"final": True} if direct else {}
                    await ws.send(json.dumps({"type": "input_audio_buffer.commit", **final}))
                    await asyncio.wait_for(finished.wait(), TIMEOUT_S)
                    result.utterances.append(heard)
                    planned = t0 + heard.audio_s + utterance.pause_s
                    await asyncio.sleep(max(0.0, planned - time.monotonic()))
            finally:
                reader.cancel()
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
    return result


async def _paced(
    ws: websockets.ClientConnection, events: list[str] | list[str | None], t0: float, step_s: float
) -> None:
    for index, event in enumerate(events):
        await asyncio.sleep(max(0.0, t0 + (index + 1) * step_s - time.monotonic()))
        if event is not None:
            await ws.send(event)


def _manual_session() -> dict[str, Any]:
    return {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {"input": {"turn_detection": None}},
        },
    }


@dataclass(frozen=True)
class Target:
    gateway: str
    direct: str
    model: str
    chunk_s: float


def _run_pairs(
    target: Target, variants: list[list[Utterance]], plan: list[tuple[int, float]]
) -> list[tuple[HalfResult, HalfResult]]:
    """One process's pairs (index, start delay); both halves of a pair start together."""

    async def _pair(index: int, delay_s: float) -> tuple[HalfResult, HalfResult]:
        await asyncio.sleep(delay_s)
        utterances = variants[index % len(variants)]
        gateway, direct = await asyncio.gather(
            run_half(target.gateway, utterances, target.chunk_s, direct=False, model=None),
            run_half(target.direct, utterances, target.chunk_s, direct=True, model=target.model),
        )
        return gateway, direct

    async def _all() -> list[tuple[HalfResult, HalfResult]]:
        return await asyncio.gather(*(_pair(i, d) for i, d in plan))

    return asyncio.run(_all())


def run_level(
    target: Target, variants: list[list[Utterance]], pairs: int, ramp_s: float, processes: int
) -> dict[str, Any]:
    """`pairs` pairs at once, starts spread over `ramp_s`, dealt round-robin to processes."""
    plan = [(i, ramp_s * i / pairs) for i in range(pairs)]
    shares = [plan[p::processes] for p in range(min(processes, pairs))]
    if len(shares) == 1:
        outputs = [_run_pairs(target, variants, shares[0])]
    else:
        with ProcessPoolExecutor(len(shares), mp_context=get_context("spawn")) as pool:
            outputs = list(pool.map(_run_pairs, repeat(target), repeat(variants), shares))
    results = [pair for out in outputs for pair in out]
    return summarize_level(pairs, results, expected=len(variants[0]) - 1)


def summarize_level(
    pairs: int, results: list[tuple[HalfResult, HalfResult]], expected: int
) -> dict[str, Any]:
    added_delta, added_first, added_done = [], [], []
    matched = total = 0
    halves: dict[str, dict[str, list[float]]] = {
        side: {"first": [], "done": []} for side in ("gateway", "direct")
    }
    for gw, dr in results:
        for side, half in (("gateway", gw), ("direct", dr)):
            for heard in half.utterances[1:]:
                if heard.deltas:
                    halves[side]["first"].append(heard.deltas[0][0])
                if heard.done_s is not None:
                    halves[side]["done"].append(heard.done_s)
        for g, d in zip(gw.utterances[1:], dr.utterances[1:], strict=False):
            total += max(len(g.deltas), len(d.deltas))
            for (g_s, g_text), (d_s, d_text) in zip(g.deltas, d.deltas, strict=False):
                if g_text != d_text:
                    break  # the texts parted: later deltas are not the same tokens
                matched += 1
                added_delta.append(g_s - d_s)
            if g.deltas and d.deltas:
                added_first.append(g.deltas[0][0] - d.deltas[0][0])
            if g.done_s is not None and d.done_s is not None:
                added_done.append(g.done_s - d.done_s)
    return {
        "pairs": pairs,
        "expected_per_side": expected * pairs,
        "gateway": _side(halves["gateway"], [gw for gw, _ in results]),
        "direct": _side(halves["direct"], [dr for _, dr in results]),
        "added_per_delta_s": distribution(added_delta),
        "added_first_delta_s": distribution(added_first),
        "added_done_s": distribution(added_done),
        "deltas_matched": matched,
        "deltas_total": total,
    }


def _side(times: dict[str, list[float]], halves: list[HalfResult]) -> dict[str, Any]:
    return {
        "completed": len(times["done"]),
        "audio_to_first_delta_s": distribution(times["first"]),
        "end_of_audio_to_done_s": distribution(times["done"]),
        "max_start_lag_s": max((h.start_lag_s for h in halves), default=0.0),
        "errors": [e for h in halves for e in h.errors][:3],
    }


def render_markdown(report: dict[str, Any]) -> str:
    def ms(dist: dict[str, float] | None, key: str) -> str:
        return f"{dist[key] * 1000:.1f}" if dist else "-"

    lines = [
        "# Realtime bridge vs vLLM `/v1/realtime` direct, side by side",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']}. {report['note']}".rstrip(),
        "",
        f"Gateway {report['gateway']}, direct {report['direct']} (model {report['model']}); "
        f"{report['utterances']} utterances per session (first one a warm-up, not counted), "
        f"{report['chunk_ms']} ms chunks at real-time pace. Milliseconds.",
        "",
        "| pairs | side | done | audio->first delta p50 | p99 | end of audio->done p50 | p99 "
        "| start lag max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in report["levels"]:
        for side in ("gateway", "direct"):
            s = level[side]
            first, done = s["audio_to_first_delta_s"], s["end_of_audio_to_done_s"]
            lines.append(
                f"| {level['pairs']} | {side} | {s['completed']}/{level['expected_per_side']} "
                f"| {ms(first, 'p50')} | {ms(first, 'p99')} | {ms(done, 'p50')} "
                f"| {ms(done, 'p99')} | {s['max_start_lag_s'] * 1000:.0f} |"
            )
    lines += [
        "",
        "Added by the gateway (gateway minus direct, same utterance, same moment; per delta "
        "only while both halves' texts agree):",
        "",
        "| pairs | per delta p50 | p99 | deltas matched | first delta p50 | done p50 | p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in report["levels"]:
        per, first, done = (
            level["added_per_delta_s"],
            level["added_first_delta_s"],
            level["added_done_s"],
        )
        lines.append(
            f"| {level['pairs']} | {ms(per, 'p50')} | {ms(per, 'p99')} "
            f"| {level['deltas_matched']}/{level['deltas_total']} | {ms(first, 'p50')} "
            f"| {ms(done, 'p50')} | {ms(done, 'p99')} |"
        )
    errors = [e for lv in report["levels"] for s in ("gateway", "direct") for e in lv[s]["errors"]]
    if errors:
        lines += ["", "First errors:", "", *[f"- `{e}`" for e in errors[:5]]]
    return "\n".join(lines) + "\n"


def first_model(ws_url: str) -> str:
    base = ws_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    base = base.split("/v1/")[0]
    with urllib.request.urlopen(f"{base}/v1/models", timeout=10) as response:  # noqa: S310
        return json.load(response)["data"][0]["id"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway", required=True, help="the gateway's ws://.../v1/realtime")
    parser.add_argument("--direct", required=True, help="the engine's ws://.../v1/realtime")
    parser.add_argument("--model", help="for the direct half; default: its first /v1/models")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--utterances", type=int, default=5)
    parser.add_argument("--chunk-ms", type=int, default=80, choices=range(20, 101, 10))
    parser.add_argument("--seed-dir", type=Path, help="bench/gpu/clips.py seed; else espeak-ng")
    parser.add_argument("--ramp-s", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=1, help="client processes per level")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    command = "python -m bench.realtime_bridge " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    levels = [int(x) for x in args.levels.split(",")]
    model = args.model or first_model(args.direct)
    voices = load_seed(args.seed_dir) if args.seed_dir else espeak_utterances(10)
    variants = [
        make_utterances(voices, args.utterances, args.chunk_ms, k)
        for k in range(min(MAX_VARIANTS, max(levels)))
    ]
    report: dict[str, Any] = {
        "command": command,
        "machine": machine(),
        "note": args.note,
        "gateway": args.gateway,
        "direct": args.direct,
        "model": model,
        "utterances": args.utterances,
        "chunk_ms": args.chunk_ms,
        "levels": [],
    }
    target = Target(args.gateway, args.direct, model, args.chunk_ms / 1000)
    for pairs in levels:
        level = run_level(target, variants, pairs, args.ramp_s, args.processes)
        report["levels"].append(level)
        print(json.dumps({"pairs": pairs, "added_per_delta_s": level["added_per_delta_s"]}))  # noqa: T201
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "results.md").write_text(render_markdown(report))
    print(render_markdown(report))  # noqa: T201


if __name__ == "__main__":
    main()
