"""Realtime transcription latency through the gateway's `/v1/realtime`, streamed at real time.

    python -m bench.realtime_latency --engine-url http://127.0.0.1:PORT \
        [--sentences 10] [--levels 1,2,4,8] [--out bench/results/realtime_latency]

Starts a gateway (a separate process, `python -m serve gateway`) in front of the engine, then
plays a stream of espeak-ng sentences (0.8-1.6 s pauses) into each session the way a
microphone would: a 100 ms chunk of 24 kHz PCM16 is sent once those 100 ms have "been
spoken". Per sentence it records, on the client's clock:

- end of speech -> `completed`: from the moment the last word ends in the stream (not when
  the gateway noticed) to the final transcript; includes the VAD's silence wait.
- speech start -> first delta: from the first word to the first interim text.
- `speech_stopped` -> `completed`: the engine's part alone.

Concurrency: N sessions stream at once (starts spread over one second). A level "holds real
time" when every sentence of every session got its `completed` and the p99 of end of
speech -> completed stays under --max-p99-s. Results go to OUT.json and OUT.md with the
command line and the machine's load.

For many sessions (client processes, 20-100 ms chunks, any `/v1/realtime` URL, the GPU run) see
bench/realtime_load.py; for the bridge vs vLLM's own `/v1/realtime`, bench/realtime_bridge.py.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import websockets

from bench.corpus import resample, synthesize
from bench.stats import distribution
from voxtral_gateway.pipeline.pcm16 import to_pcm16

SENTENCES = (
    "Please call the office before noon tomorrow.",
    "The train leaves the station in the morning.",
    "We need more water for the garden this summer.",
    "She opened the window to let the fresh air in.",
    "My brother bought a new car last week.",
    "The children played football in the park.",
    "Turn left at the bridge and follow the river.",
    "Our meeting will start after the coffee break.",
    "He reads the newspaper every evening at home.",
    "The quick brown fox jumps over the lazy dog.",
)
RATE_HZ = 16_000
CHUNK_S = 0.1
SILENCE_MS = 500


@dataclass(frozen=True)
class Stream:
    samples: np.ndarray
    spans: list[tuple[float, float]]
    texts: list[str]


def build_stream(count: int, seed: int = 0) -> Stream:
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.5 * RATE_HZ), np.float32)]
    spans, texts, cursor = [], [], 0.5
    for index in range(count):
        text = SENTENCES[index % len(SENTENCES)]
        voice = synthesize(text, "en-us", 150)
        spans.append((cursor, cursor + len(voice) / RATE_HZ))
        texts.append(text)
        pause = rng.uniform(0.8, 1.6)
        parts += [voice, np.zeros(int(pause * RATE_HZ), np.float32)]
        cursor += len(voice) / RATE_HZ + pause
    parts.append(np.zeros(RATE_HZ, np.float32))
    samples = np.concatenate(parts)
    samples += (rng.standard_normal(len(samples)) * 0.002).astype(np.float32)
    return Stream(samples, spans, texts)


def pcm16_chunks(samples: np.ndarray) -> list[str]:
    audio = resample(samples, RATE_HZ, 24_000)
    pcm = to_pcm16(audio)
    step = int(24_000 * CHUNK_S)
    return [
        base64.b64encode(pcm[i : i + step].tobytes()).decode() for i in range(0, len(pcm), step)
    ]


@dataclass
class SessionResult:
    eos_to_completed_s: list[float] = field(default_factory=list)
    start_to_first_delta_s: list[float] = field(default_factory=list)
    stopped_to_completed_s: list[float] = field(default_factory=list)
    completed: int = 0
    expected: int = 0
    transcripts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def run_session(url: str, stream: Stream, delay_s: float) -> SessionResult:
    await asyncio.sleep(delay_s)
    result = SessionResult(expected=len(stream.spans))
    chunks = pcm16_chunks(stream.samples)
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()  # session.created
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {
                            "input": {
                                "transcription": {"language": "en"},
                                "turn_detection": {
                                    "type": "server_vad",
                                    "silence_duration_ms": SILENCE_MS,
                                },
                            }
                        },
                    },
                }
            )
        )
        t0 = time.monotonic()

        async def _send() -> None:
            for index, chunk in enumerate(chunks):
                # A microphone delivers a chunk once its 100 ms have been spoken.
                await asyncio.sleep(max(0.0, t0 + (index + 1) * CHUNK_S - time.monotonic()))
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))

        sender = asyncio.create_task(_send())
        item_sentence: dict[str, int] = {}
        first_delta: set[str] = set()
        stopped_at: dict[str, float] = {}
        deadline = t0 + len(stream.samples) / RATE_HZ + 30
        try:
            while result.completed < result.expected and time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                except TimeoutError:
                    break
                now = time.monotonic()
                event = json.loads(raw)
                kind = event["type"]
                if kind == "input_audio_buffer.speech_started":
                    start_s = event["audio_start_ms"] / 1000
                    nearest = min(
                        range(len(stream.spans)), key=lambda i: abs(stream.spans[i][0] - start_s)
                    )
                    item_sentence[event["item_id"]] = nearest
                elif kind == "input_audio_buffer.speech_stopped":
                    stopped_at[event["item_id"]] = now
                elif kind.endswith("transcription.delta"):
                    item = event["item_id"]
                    if item not in first_delta and item in item_sentence:
                        first_delta.add(item)
                        speech_start = t0 + stream.spans[item_sentence[item]][0]
                        result.start_to_first_delta_s.append(now - speech_start)
                elif kind.endswith("transcription.completed"):
                    item = event["item_id"]
                    result.completed += 1
                    result.transcripts.append(event["transcript"])
                    if item in item_sentence:
                        speech_end = t0 + stream.spans[item_sentence[item]][1]
                        result.eos_to_completed_s.append(now - speech_end)
                    if item in stopped_at:
                        result.stopped_to_completed_s.append(now - stopped_at[item])
                elif kind == "error" or kind.endswith("failed"):
                    result.errors.append(json.dumps(event)[:300])
        finally:
            sender.cancel()
    return result


async def run_level(url: str, stream: Stream, sessions: int) -> dict[str, Any]:
    delays = np.linspace(0, 1.0, sessions) if sessions > 1 else [0.0]
    results = await asyncio.gather(*(run_session(url, stream, float(d)) for d in delays))
    eos = [v for r in results for v in r.eos_to_completed_s]
    return {
        "sessions": sessions,
        "completed": sum(r.completed for r in results),
        "expected": sum(r.expected for r in results),
        "eos_to_completed_s": distribution(eos),
        "start_to_first_delta_s": distribution(
            [v for r in results for v in r.start_to_first_delta_s]
        ),
        "stopped_to_completed_s": distribution(
            [v for r in results for v in r.stopped_to_completed_s]
        ),
        "errors": [e for r in results for e in r.errors][:5],
        "sample_transcripts": results[0].transcripts[:3],
    }


def engine_baseline(engine_url: str, model: str, stream: Stream) -> dict[str, float] | None:
    """Seconds the engine alone takes per sentence (sent directly, one at a time, with the
    same 300 ms lead and 500 ms tail a realtime turn carries): the floor under
    `stopped -> completed`."""
    times = []
    for start_s, end_s in stream.spans:
        clip = stream.samples[int((start_s - 0.3) * RATE_HZ) : int((end_s + 0.5) * RATE_HZ)]
        buffer = io.BytesIO()
        sf.write(buffer, clip, RATE_HZ, format="WAV", subtype="PCM_16")
        boundary = "realtimebench"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
            ).encode()
            + buffer.getvalue()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(  # noqa: S310 - loopback engine
            f"{engine_url}/v1/audio/transcriptions",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            response.read()
        times.append(time.monotonic() - started)
    return distribution(times)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gateway(
    engine_url: str, interim_s: float, log_path: Path
) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "VOXTRAL_REALTIME__INTERIM_INTERVAL_S": str(interim_s),
        "VOXTRAL_REALTIME__MAX_CONNECTIONS": "256",
        "VOXTRAL_LOG_LEVEL": "WARNING",
    }
    log = log_path.open("w")
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "serve", "gateway", "--upstream", engine_url, "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):  # noqa: S310 - loopback
                return process, base
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"gateway did not start; see {log_path}")


def render_markdown(report: dict[str, Any]) -> str:
    def fmt(dist: dict[str, float] | None, key: str) -> str:
        return f"{dist[key]:.2f}" if dist else "-"

    lines = [
        "# Realtime latency (`/v1/realtime`, server VAD, real-time streaming)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Engine: {report['engine_url']} ({report['engine_model']}); CPUs: {report['cpus']}; "
        f"load average at start: {report['load_average_start']}; interim interval "
        f"{report['interim_interval_s']} s; VAD silence {SILENCE_MS} ms; "
        f"{report['sentences']} sentences per session; "
        f"'holds real time' = all completed and p99 end-of-speech->completed <= "
        f"{report['max_p99_s']} s.",
        "",
        "Engine alone, one sentence at a time, same clips (s): before "
        f"p50 {fmt(report['engine_direct_s_before'], 'p50')} / p99 "
        f"{fmt(report['engine_direct_s_before'], 'p99')}, after p50 "
        f"{fmt(report['engine_direct_s_after'], 'p50')} / p99 "
        f"{fmt(report['engine_direct_s_after'], 'p99')}.",
        "",
        "| sessions | completed | EOS->completed p50 | p99 | start->first delta p50 | p99 "
        "| stopped->completed p50 | p99 | holds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level in report["levels"]:
        eos, first, stop = (
            level["eos_to_completed_s"],
            level["start_to_first_delta_s"],
            level["stopped_to_completed_s"],
        )
        lines.append(
            f"| {level['sessions']} | {level['completed']}/{level['expected']} "
            f"| {fmt(eos, 'p50')} | {fmt(eos, 'p99')} | {fmt(first, 'p50')} | {fmt(first, 'p99')} "
            f"| {fmt(stop, 'p50')} | {fmt(stop, 'p99')} | {'yes' if level['holds'] else 'no'} |"
        )
    lines += [
        "",
        f"Most concurrent live sessions held at real time: **{report['max_sessions_held']}**",
        "",
        "Times in seconds on the client's clock.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine-url", required=True)
    parser.add_argument("--sentences", type=int, default=10)
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--interim-interval-s", type=float, default=1.0)
    parser.add_argument("--max-p99-s", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/realtime_latency"))
    args = parser.parse_args(argv)
    command = "python -m bench.realtime_latency " + shlex.join(argv or sys.argv[1:])

    stream = build_stream(args.sentences)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(f"{args.engine_url}/v1/models", timeout=10) as response:  # noqa: S310
        engine_model = json.load(response)["data"][0]["id"]
    report: dict[str, Any] = {
        "command": command,
        "engine_url": args.engine_url,
        "engine_model": engine_model,
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "interim_interval_s": args.interim_interval_s,
        "sentences": args.sentences,
        "max_p99_s": args.max_p99_s,
        "levels": [],
    }
    report["engine_direct_s_before"] = engine_baseline(args.engine_url, engine_model, stream)
    process, base = start_gateway(
        args.engine_url,
        args.interim_interval_s,
        Path(tempfile.gettempdir()) / f"{args.out.name}.gateway.log",
    )
    url = base.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    try:
        for sessions in (int(x) for x in args.levels.split(",")):
            level = asyncio.run(run_level(url, stream, sessions))
            eos = level["eos_to_completed_s"]
            level["holds"] = bool(
                level["completed"] == level["expected"] and eos and eos["p99"] <= args.max_p99_s
            )
            report["levels"].append(level)
            print(json.dumps({k: level[k] for k in ("sessions", "completed", "holds")}), flush=True)  # noqa: T201
    finally:
        process.terminate()
        process.wait(timeout=30)
    report["engine_direct_s_after"] = engine_baseline(args.engine_url, engine_model, stream)
    held = [level["sessions"] for level in report["levels"] if level["holds"]]
    report["max_sessions_held"] = max(held) if held else 0
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render_markdown(report))
    print(render_markdown(report))  # noqa: T201


if __name__ == "__main__":
    main()
