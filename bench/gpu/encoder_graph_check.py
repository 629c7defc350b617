"""Same transcripts with and without the encoder_cuda_graphs engine plugin (issue 21)?

Run on the device against one engine at a time, each request alone (concurrency 1), so the
decoder's batch never differs between the two engines and any difference in text comes from the
encoder. Temperature 0, a token cap (the random-weight model never stops by itself; random
logits are close together, so a single flipped bit in the encoder output tends to change them).

    python bench/gpu/encoder_graph_check.py save --url http://127.0.0.1:8000 \\
        --corpus /tmp/vg/corpus --out base.json       # unpatched engine (twice: a control)
    python bench/gpu/encoder_graph_check.py save ... --out graphs.json   # plugin engine
    python bench/gpu/encoder_graph_check.py compare base.json graphs.json --engine-log LOG

Probes: `--n` transcriptions of the corpus's 30 s and 5 s clips in turn (the encoder sees
B = 1), and chat completions with one long audio each (`--chat-seconds`, default 60,150,300 s:
B = 2, 5 and 10 chunks of 30 s in one encoder call, still one request). `compare` exits 1 when
any text differs or nothing could be compared, and summarises the plugin's capture log lines
(every kept graph was also checked bitwise against eager on live input when captured).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
import time
import wave
from pathlib import Path

import httpx
import numpy as np

SAMPLE_RATE_HZ = 16_000
CHAT_PROMPT = "Transcribe this audio."


def _wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def _read_pcm(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def _model(client: httpx.Client, url: str) -> str:
    response = client.get(f"{url}/v1/models")
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])


def _transcribe(client: httpx.Client, url: str, model: str, path: Path, tokens: int) -> dict:
    form = {"model": model, "temperature": "0", "max_completion_tokens": str(tokens)}
    files = {"file": (path.name, path.read_bytes(), "audio/wav")}
    response = client.post(f"{url}/v1/audio/transcriptions", data=form, files=files)
    if response.status_code != 200:
        return {"error": f"{response.status_code} {response.text[:300]}"}
    return {"text": response.json()["text"]}


def _chat(client: httpx.Client, url: str, model: str, audio: bytes, tokens: int) -> dict:
    encoded = base64.b64encode(audio).decode()
    content = [
        {"type": "input_audio", "input_audio": {"data": encoded, "format": "wav"}},
        {"type": "text", "text": CHAT_PROMPT},
    ]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": tokens,
    }
    response = client.post(f"{url}/v1/chat/completions", json=body)
    if response.status_code != 200:
        return {"error": f"{response.status_code} {response.text[:300]}"}
    return {"text": response.json()["choices"][0]["message"]["content"]}


def save(args: argparse.Namespace) -> int:
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    clips = sorted(
        (item for item in manifest["items"] if item["kind"] in ("clip30", "clip5")),
        key=lambda item: (item["kind"] != "clip30", item["id"]),
    )
    clip30 = [args.corpus / item["path"] for item in clips if item["kind"] == "clip30"]
    url = args.url.rstrip("/")
    probes: dict[str, dict] = {}
    started = time.perf_counter()
    with httpx.Client(timeout=300) as client:
        model = _model(client, url)
        for index in range(args.n):
            item = clips[index % len(clips)]
            result = _transcribe(client, url, model, args.corpus / item["path"], args.tokens)
            probes[f"transcription-{index:02d}-{item['id']}"] = result
        for seconds in args.chat_seconds:
            pcm = np.concatenate([_read_pcm(clip30[k % len(clip30)]) for k in range(seconds // 30)])
            pcm = pcm[: seconds * SAMPLE_RATE_HZ]
            result = _chat(client, url, model, _wav_bytes(pcm), args.tokens)
            probes[f"chat-{seconds}s-B{-(-seconds // 30)}"] = result
    args.out.write_text(json.dumps({"url": url, "model": model, "probes": probes}, indent=1))
    errors = sum("error" in probe for probe in probes.values())
    print(f"saved {len(probes)} probes ({errors} errors) in {time.perf_counter() - started:.1f} s")
    return 0


def _capture_summary(log_path: Path) -> list[str]:
    text = log_path.read_text(encoding="utf-8", errors="replace")
    captured = sorted(int(b) for b in re.findall(r"encoder CUDA graph captured for B=(\d+)", text))
    differing = re.findall(r"encoder CUDA graph for B=(\d+) differs", text)
    failed = re.findall(r"encoder CUDA graph capture for B=(\d+) failed", text)
    registered = re.findall(
        r"(\([\w-]+ pid=\d+\)).*encoder_cuda_graphs registered \(([^)]*)\)", text
    )
    memory = re.findall(r"\(all graphs ([\d.]+) MiB, (\d+) graphs\)", text)
    above = sorted(
        int(b) for b in re.findall(r"voxtral encoder B=(\d+) above the graph bound", text)
    )
    return [
        f"plugin registered: {sorted(set(registered))}",
        f"graphs captured (bitwise equal to eager at capture): {len(captured)}, B = {captured}",
        f"graphs discarded (differed from eager): {differing}",
        f"captures failed (B stayed eager): {failed}",
        f"B above the graph bound (eager): {above}",
        f"device memory of all graphs (last log line): {memory[-1][0] if memory else '-'} MiB",
    ]


def compare(args: argparse.Namespace) -> int:
    base = json.loads(args.base.read_text())["probes"]
    new = json.loads(args.new.read_text())["probes"]
    same, different, not_compared = [], [], []
    for name in base:
        a, b = base[name], new.get(name, {"error": "missing"})
        if "text" not in a or "text" not in b:
            not_compared.append(f"{name}: {a.get('error')} | {b.get('error')}")
        elif a["text"] == b["text"]:
            same.append(name)
        else:
            different.append(f"{name}:\n  base: {a['text']!r}\n  new:  {b['text']!r}")
    print(f"{args.base.name} vs {args.new.name}: {len(same)} identical, {len(different)} differ, "
          f"{len(not_compared)} not compared")  # fmt: skip
    for line in different + not_compared:
        print(f"  {line}")
    if args.engine_log is not None:
        for line in _capture_summary(args.engine_log):
            print(f"  {line}")
    return 1 if different or not same else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    save_parser = sub.add_parser("save", help="probe one engine, write its texts")
    save_parser.add_argument("--url", required=True, help="engine base URL (no /v1)")
    save_parser.add_argument("--corpus", type=Path, required=True, help="bench/gpu/clips.py dir")
    save_parser.add_argument("--out", type=Path, required=True)
    save_parser.add_argument("--n", type=int, default=16, help="transcriptions, one at a time")
    save_parser.add_argument("--tokens", type=int, default=64, help="output token cap")
    save_parser.add_argument(
        "--chat-seconds",
        type=lambda value: [int(s) for s in value.split(",") if s],
        default=[60, 150, 300],
        help="lengths of the long-audio chat probes (multiples of 30 s)",
    )
    compare_parser = sub.add_parser("compare", help="exact text comparison of two saves")
    compare_parser.add_argument("base", type=Path)
    compare_parser.add_argument("new", type=Path)
    compare_parser.add_argument("--engine-log", type=Path, help="summarise the plugin's log lines")
    args = parser.parse_args()
    return save(args) if args.command == "save" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
