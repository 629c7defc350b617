"""Many realtime sessions at once, each a microphone streaming speech at real-time pace.

    python -m bench.realtime_load --url ws://127.0.0.1:8001/v1/realtime?intent=transcription \
        [--levels 1,8,32,64] [--sentences 8] [--chunk-ms 100] [--seed-dir DIR] \
        [--max-p99-s 1.5] [--out bench/results/NAME] [--note TEXT]

Speaks OpenAI's Realtime transcription protocol with server VAD to any `/v1/realtime` URL (the
gateway's own route; a bridge-mode gateway too). Each session plays its own stream of known
sentences and pauses (bench/realtime_streams.py): a `--chunk-ms` chunk of 24 kHz PCM16 is sent
once it has "been spoken" by the wall clock, never earlier. Per turn, on the client's clock:

- `speech_stopped` -> `completed`: the server's part once its VAD has closed the turn;
- end of speech -> `completed`: from the moment the sentence ends in the audio (known from the
  stream, not from the server) to the final text; includes the VAD's silence wait;
- speech start -> first delta (interim text), and end of speech -> `speech_stopped`.

Real time, defined: a session *keeps real time* when every chunk left the client within
`--max-send-lag-s` of the moment it was spoken (the server read its audio as fast as it was
made) and every sentence got its `completed`. A level *holds* when every session keeps real
time and the p99 of end of speech -> `completed` is at most `--max-p99-s`. "Sessions held" is
the largest level that holds. Results: OUT/results.json and OUT/results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from bench.corpus import resample
from bench.realtime_report import engine_alone, machine, render_markdown
from bench.realtime_streams import (
    OPENAI_RATE_HZ,
    RATE_HZ,
    Stream,
    append_events,
    build_stream,
    espeak_utterances,
    load_seed,
)
from bench.stats import distribution

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"
DRAIN_S = 30.0  # after the last chunk, how long a session waits for its last `completed`
MAX_VARIANTS = 8  # distinct streams per level; sessions beyond share them, starts offset


@dataclass(frozen=True)
class PacedStream:
    stream: Stream
    events: list[str]
    chunk_s: float


@dataclass
class SessionResult:
    expected: int
    completed: int = 0
    eos_to_completed_s: list[float] = field(default_factory=list)
    stopped_to_completed_s: list[float] = field(default_factory=list)
    start_to_first_delta_s: list[float] = field(default_factory=list)
    eos_to_stopped_s: list[float] = field(default_factory=list)
    max_send_lag_s: float = 0.0
    transcripts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def session_update(silence_ms: int, language: str | None) -> str:
    transcription: dict[str, Any] = {"language": language} if language else {}
    return json.dumps(
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "transcription": transcription,
                        "turn_detection": {
                            "type": "server_vad",
                            "silence_duration_ms": silence_ms,
                        },
                    }
                },
            },
        }
    )


async def _receive_until(ws: websockets.ClientConnection, kind: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if event["type"] == kind:
            return
        if event["type"] == "error":
            raise ConnectionError(json.dumps(event)[:300])


async def run_session(url: str, paced: PacedStream, delay_s: float, update: str) -> SessionResult:
    """One microphone: stream `paced` from `delay_s` on, record every turn's timings."""
    await asyncio.sleep(delay_s)
    stream = paced.stream
    result = SessionResult(expected=len(stream.spans))
    try:
        async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
            await _receive_until(ws, "session.created", 30)
            await ws.send(update)
            await _receive_until(ws, "session.updated", 30)
            await _stream_and_listen(ws, paced, result)
    except (OSError, TimeoutError, websockets.WebSocketException, ConnectionError) as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
    return result


async def _stream_and_listen(
    ws: websockets.ClientConnection, paced: PacedStream, result: SessionResult
) -> None:
    stream = paced.stream
    t0 = time.monotonic()

    async def _send() -> None:
        for index, event in enumerate(paced.events):
            # A microphone delivers a chunk once its audio has been spoken, not before.
            due = t0 + (index + 1) * paced.chunk_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await ws.send(event)
            # A send that returns late means the server stopped reading (or this client
            # is starved): the session is behind real time by that much.
            result.max_send_lag_s = max(result.max_send_lag_s, time.monotonic() - due)

    sender = asyncio.create_task(_send())
    item_sentence: dict[str, int] = {}
    first_delta: set[str] = set()
    stopped_at: dict[str, float] = {}
    deadline = t0 + len(paced.events) * paced.chunk_s + DRAIN_S
    try:
        while result.completed < result.expected and time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
            except TimeoutError:
                result.errors.append("timed out waiting for completed events")
                break
            now = time.monotonic()
            event = json.loads(raw)
            kind = event["type"]
            item = event.get("item_id")
            if kind == "input_audio_buffer.speech_started":
                start_s = event["audio_start_ms"] / 1000
                item_sentence[item] = min(
                    range(len(stream.spans)), key=lambda i: abs(stream.spans[i][0] - start_s)
                )
            elif kind == "input_audio_buffer.speech_stopped":
                stopped_at[item] = now
                if item in item_sentence:
                    speech_end = t0 + stream.spans[item_sentence[item]][1]
                    result.eos_to_stopped_s.append(now - speech_end)
            elif kind == DELTA and item not in first_delta and item in item_sentence:
                first_delta.add(item)
                speech_start = t0 + stream.spans[item_sentence[item]][0]
                result.start_to_first_delta_s.append(now - speech_start)
            elif kind == COMPLETED:
                result.completed += 1
                result.transcripts.append(event["transcript"])
                if item in item_sentence:
                    speech_end = t0 + stream.spans[item_sentence[item]][1]
                    result.eos_to_completed_s.append(now - speech_end)
                if item in stopped_at:
                    result.stopped_to_completed_s.append(now - stopped_at[item])
            elif kind == "error" or kind == FAILED:
                result.errors.append(json.dumps(event)[:300])
    finally:
        sender.cancel()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_share(
    url: str, variants: list[PacedStream], plan: list[tuple[int, float]], update: str
) -> tuple[list[SessionResult], float]:
    """One process's sessions (index, start delay); returns them and its CPU share."""

    async def _all() -> list[SessionResult]:
        return await asyncio.gather(
            *(run_session(url, variants[i % len(variants)], delay, update) for i, delay in plan)
        )

    cpu_before, wall_before = _cpu_s(), time.monotonic()
    results = asyncio.run(_all())
    return results, (_cpu_s() - cpu_before) / (time.monotonic() - wall_before)


def run_level(
    url: str,
    variants: list[PacedStream],
    sessions: int,
    *,
    update: str,
    ramp_s: float,
    processes: int,
    max_send_lag_s: float,
    max_p99_s: float,
) -> dict[str, Any]:
    """`sessions` microphones at once, starts spread evenly over `ramp_s`, dealt round-robin
    to `processes` client processes (one Python process keeps time for ~100 sessions)."""
    plan = [(i, ramp_s * i / sessions) for i in range(sessions)]
    shares = [plan[p::processes] for p in range(min(processes, sessions))]
    if len(shares) == 1:
        outputs = [_run_share(url, variants, shares[0], update)]
    else:
        with ProcessPoolExecutor(len(shares), mp_context=get_context("spawn")) as pool:
            outputs = list(
                pool.map(_run_share, repeat(url), repeat(variants), shares, repeat(update))
            )
    order = [i for share in shares for i, _ in share]
    by_index = dict(zip(order, [r for out in outputs for r in out[0]], strict=True))
    results = [by_index[i] for i in range(sessions)]
    return summarize_level(
        sessions,
        results,
        client_cpu_share=max(share for _, share in outputs),
        max_send_lag_s=max_send_lag_s,
        max_p99_s=max_p99_s,
    )


def summarize_level(
    sessions: int,
    results: list[SessionResult],
    *,
    client_cpu_share: float,
    max_send_lag_s: float,
    max_p99_s: float,
) -> dict[str, Any]:
    def pooled(name: str) -> dict[str, float] | None:
        return distribution([v for r in results for v in getattr(r, name)])

    behind = [
        i
        for i, r in enumerate(results)
        if r.completed < r.expected or r.max_send_lag_s > max_send_lag_s or r.errors
    ]
    eos = pooled("eos_to_completed_s")
    completed = sum(r.completed for r in results)
    expected = sum(r.expected for r in results)
    return {
        "sessions": sessions,
        "completed": completed,
        "expected": expected,
        "eos_to_completed_s": eos,
        "stopped_to_completed_s": pooled("stopped_to_completed_s"),
        "start_to_first_delta_s": pooled("start_to_first_delta_s"),
        "eos_to_stopped_s": pooled("eos_to_stopped_s"),
        "max_send_lag_s": distribution([r.max_send_lag_s for r in results]),
        "sessions_behind": len(behind),
        "client_cpu_share": round(client_cpu_share, 4),
        "holds": bool(not behind and eos is not None and eos["p99"] <= max_p99_s),
        "errors": [e for r in results for e in r.errors][:5],
        "sample_transcripts": results[0].transcripts[:3],
    }


def paced_variants(
    utterances: list[tuple[np.ndarray, str]], sentences: int, chunk_ms: int, count: int
) -> list[PacedStream]:
    """`count` distinct streams (other sentences first, other pauses), as 24 kHz appends."""
    variants = []
    for k in range(count):
        stream = build_stream(utterances, sentences, offset=3 * k, seed=k)
        audio = resample(stream.samples, RATE_HZ, OPENAI_RATE_HZ)
        variants.append(
            PacedStream(stream, append_events(audio, OPENAI_RATE_HZ, chunk_ms), chunk_ms / 1000)
        )
    return variants


def held_sessions(levels: list[dict[str, Any]]) -> int:
    """The largest level that holds (0 if none)."""
    return max((level["sessions"] for level in levels if level["holds"]), default=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="ws://HOST:PORT/v1/realtime?intent=...")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument("--chunk-ms", type=int, default=100, choices=range(20, 101, 10))
    parser.add_argument("--silence-ms", type=int, default=500)
    parser.add_argument("--language", default="en")
    parser.add_argument("--seed-dir", type=Path, help="bench/gpu/clips.py seed; else espeak-ng")
    parser.add_argument("--ramp-s", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=1, help="client processes per level")
    parser.add_argument("--max-send-lag-s", type=float, default=0.5)
    parser.add_argument("--max-p99-s", type=float, default=1.5)
    parser.add_argument("--stop-after-fails", type=int, default=2, help="levels in a row")
    parser.add_argument(
        "--engine-url",
        help="also time the engine alone (HTTP, one sentence at a time) before and after: the "
        "floor under stopped->completed; only for engines that stop (not random weights)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for results.*")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    command = "python -m bench.realtime_load " + shlex.join(sys.argv[1:] if argv is None else argv)
    levels = [int(x) for x in args.levels.split(",")]
    utterances = load_seed(args.seed_dir) if args.seed_dir else espeak_utterances(10)
    variants = paced_variants(
        utterances, args.sentences, args.chunk_ms, min(MAX_VARIANTS, max(levels))
    )
    report: dict[str, Any] = {
        "command": command,
        "machine": machine(),
        "note": args.note,
        "url": args.url,
        "sentences": args.sentences,
        "stream_s": variants[0].stream.duration_s,
        "chunk_ms": args.chunk_ms,
        "silence_ms": args.silence_ms,
        "ramp_s": args.ramp_s,
        "max_send_lag_s": args.max_send_lag_s,
        "max_p99_s": args.max_p99_s,
        "largest_level": max(levels),
        "levels": [],
    }
    baseline = variants[0].stream
    if args.engine_url:
        report["engine_alone_before_s"] = engine_alone(args.engine_url, baseline)
    update = session_update(args.silence_ms, args.language)
    fails = 0
    for sessions in levels:
        level = run_level(
            args.url,
            variants,
            sessions,
            update=update,
            ramp_s=args.ramp_s,
            processes=args.processes,
            max_send_lag_s=args.max_send_lag_s,
            max_p99_s=args.max_p99_s,
        )
        report["levels"].append(level)
        print(json.dumps({k: level[k] for k in ("sessions", "completed", "holds")}), flush=True)  # noqa: T201
        fails = 0 if level["holds"] else fails + 1
        if fails >= args.stop_after_fails:
            break
    if args.engine_url:
        report["engine_alone_after_s"] = engine_alone(args.engine_url, baseline)
    report["sessions_held"] = held_sessions(report["levels"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "results.md").write_text(render_markdown(report))
    print(render_markdown(report))  # noqa: T201


if __name__ == "__main__":
    main()
