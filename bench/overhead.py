"""The gateway's own latency on a short clip: gateway vs the same engine called directly.

    python -m bench.overhead --gateway http://127.0.0.1:8001 --direct http://127.0.0.1:8000 \
        --pairs 200 --name overhead-cpu-whisper

The clip is espeak-ng speech from its first to its last sample (no silence to trim), and the
script checks that the gateway's VAD keeps all of it as one segment: then the engine receives
the same samples both ways (the gateway re-encodes PCM16 bit for bit) and does the same work,
so the latency difference is the gateway's cost alone. Requests alternate direct/gateway (the
order flips every pair) from one client at concurrency 1; the paired difference's median is the
overhead. The gateway's `Server-Timing` header splits its side into read, decode, vad, engine
(the wait for the upstream after VAD; with the head start VAD runs beside the call) and total.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shlex
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.client import TRANSCRIPTIONS_PATH, api_base
from bench.corpus import SAMPLE_RATE_HZ, SENTENCES, synthesize, write_wav
from bench.report import describe_machine, markdown_header

RESULTS_DIR = Path(__file__).parent / "results"
_GAP_S = 0.15  # between sentences: short enough that VAD never splits or trims the clip


def edge_to_edge_clip(target_s: float) -> np.ndarray:
    """Sentences joined by short gaps until `target_s` is reached; speech at both ends."""
    parts: list[np.ndarray] = []
    total = 0
    for sentence in SENTENCES:
        speech = synthesize(sentence, "en-us", 175)
        if parts:
            parts.append(np.zeros(round(_GAP_S * SAMPLE_RATE_HZ), np.float32))
        parts.append(speech)
        total += len(speech)
        if total >= target_s * SAMPLE_RATE_HZ:
            break
    return np.concatenate(parts)


def server_timing(header: str | None) -> dict[str, float]:
    """`read;dur=0.19, vad;dur=2.2` -> {"read": 0.19, "vad": 2.2} (ms)."""
    phases: dict[str, float] = {}
    for entry in (header or "").split(","):
        name, _, rest = entry.strip().partition(";dur=")
        if name and rest:
            phases[name] = float(rest)
    return phases


class Caller:
    """One synchronous client, as an SDK user has: keep-alive on, one request at a time."""

    def __init__(self, wav: bytes, model: str, api_key: str | None):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=120.0, headers=headers, trust_env=False)
        self._wav = wav
        self._form = {"model": model}

    def post(
        self, base_url: str, form: dict[str, str] | None = None
    ) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = self._client.post(
            base_url + TRANSCRIPTIONS_PATH,
            files={"file": ("clip.wav", self._wav, "audio/wav")},
            data={**self._form, **(form or {})},
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"{base_url} answered {response.status_code}: {response.text[:300]}")
        return elapsed, response


def _check_one_whole_segment(caller: Caller, gateway: str, duration_s: float) -> None:
    _, response = caller.post(gateway, {"response_format": "verbose_json"})
    segments = response.json()["segments"]
    spans = [(s["start"], s["end"]) for s in segments]
    if len(spans) != 1 or spans[0][0] > 0.001 or spans[0][1] < duration_s - 0.001:
        raise SystemExit(f"VAD did not keep the clip whole ({spans}); the comparison is unfair")


def _ms(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, math.floor(q * len(ordered)))], 2)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    gateway, direct = api_base(args.gateway), api_base(args.direct)
    if args.clip:  # e.g. made here with --save-clip, for a machine without espeak-ng
        wav = args.clip.read_bytes()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "clip.wav"
            write_wav(path, edge_to_edge_clip(args.clip_s))
            wav = path.read_bytes()
    with wave.open(io.BytesIO(wav)) as clip:
        duration_s = clip.getnframes() / clip.getframerate()
    model = args.model or httpx.get(direct + "/v1/models").json()["data"][0]["id"]
    # The gateway budgets tokens per segment; give vLLM the same cap so both do equal work.
    tokens = max(args.min_tokens, math.ceil(args.tokens_per_audio_s * duration_s))
    caller = Caller(wav, model, args.api_key)
    direct_form = {"max_completion_tokens": str(tokens)}
    _check_one_whole_segment(caller, gateway, duration_s)
    for _ in range(args.warmup):
        caller.post(direct, direct_form)
        caller.post(gateway)

    direct_s: list[float] = []
    gateway_s: list[float] = []
    phases: dict[str, list[float]] = {}
    same_text = 0
    for pair in range(args.pairs):
        order = ("direct", "gateway") if pair % 2 == 0 else ("gateway", "direct")
        texts = {}
        for side in order:
            if side == "direct":
                elapsed, response = caller.post(direct, direct_form)
                direct_s.append(elapsed)
            else:
                elapsed, response = caller.post(gateway)
                gateway_s.append(elapsed)
                for name, ms in server_timing(response.headers.get("server-timing")).items():
                    phases.setdefault(name, []).append(ms)
            texts[side] = response.json()["text"].strip()
        same_text += texts["direct"] == texts["gateway"]
        if not args.quiet and (pair + 1) % 25 == 0:
            print(f"{pair + 1}/{args.pairs} pairs", file=sys.stderr)

    differences = [g - d for g, d in zip(gateway_s, direct_s, strict=True)]
    return {
        "clip_s": round(duration_s, 3),
        "pairs": args.pairs,
        "max_completion_tokens": tokens,
        "same_text_pairs": same_text,
        "direct_ms": {"p50": _ms(direct_s, 0.5), "p90": _ms(direct_s, 0.9)},
        "gateway_ms": {"p50": _ms(gateway_s, 0.5), "p90": _ms(gateway_s, 0.9)},
        "overhead_ms": {
            "p50_of_pair_differences": _ms(differences, 0.5),
            "p50_gateway_minus_p50_direct": round(
                1000 * (statistics.median(gateway_s) - statistics.median(direct_s)), 2
            ),
        },
        "gateway_server_timing_p50_ms": {
            name: round(statistics.median(values), 2) for name, values in phases.items()
        },
    }


def render(result: dict[str, Any], command: str, machine: dict[str, Any], notes: list[str]) -> str:
    timing = result["gateway_server_timing_p50_ms"]
    lines = [
        *markdown_header(
            "Gateway overhead on a short clip (`bench/overhead.py`)", command, machine, notes
        ),
        f"Clip: {result['clip_s']} s of speech edge to edge (one VAD segment, the whole clip); "
        f"{result['pairs']} pairs, max_completion_tokens {result['max_completion_tokens']} both "
        f"ways; identical text in {result['same_text_pairs']} of {result['pairs']} pairs.",
        "",
        "| | p50 ms | p90 ms |",
        "|---|---|---|",
        f"| vLLM directly | {result['direct_ms']['p50']} | {result['direct_ms']['p90']} |",
        f"| through the gateway | {result['gateway_ms']['p50']} | {result['gateway_ms']['p90']} |",
        "",
        f"**Overhead: p50 of the paired differences "
        f"{result['overhead_ms']['p50_of_pair_differences']} ms** (p50 gateway - p50 direct: "
        f"{result['overhead_ms']['p50_gateway_minus_p50_direct']} ms).",
        "",
        "Gateway's Server-Timing, p50 ms: "
        + ", ".join(f"{name} {ms}" for name, ms in timing.items())
        + ". `engine` is the wait for vLLM after VAD (with the gateway's head start the call"
        " began before VAD, which ran beside it); total - engine - vad is the rest of the"
        " gateway's own time inside the handler.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--direct", required=True)
    parser.add_argument("--model", default=None, help="default: the engine's first model")
    parser.add_argument("--clip-s", type=float, default=5.0)
    parser.add_argument("--clip", type=Path, default=None, help="a WAV to use instead")
    parser.add_argument("--save-clip", type=Path, default=None, help="write the clip; exit")
    parser.add_argument("--out", type=Path, default=None, help="output dir (overrides --name)")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--tokens-per-audio-s", type=float, default=6.0, help="as the gateway's")
    parser.add_argument("--min-tokens", type=int, default=16, help="as the gateway's")
    parser.add_argument("--api-key", default=None, help="the gateway's key, if it has one")
    parser.add_argument("--name", default=None, help="writes bench/results/NAME/")
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.save_clip:
        write_wav(args.save_clip, edge_to_edge_clip(args.clip_s))
        return
    result = measure(args)
    print(json.dumps(result, indent=2))
    if args.name or args.out:
        out = args.out or RESULTS_DIR / args.name
        out.mkdir(parents=True, exist_ok=True)
        command = "python -m bench.overhead " + shlex.join(sys.argv[1:] if argv is None else argv)
        machine = describe_machine()
        (out / "results.json").write_text(
            json.dumps({"command": command, "machine": machine, **result}, indent=2) + "\n"
        )
        (out / "results.md").write_text(render(result, command, machine, args.note))


if __name__ == "__main__":
    main()
