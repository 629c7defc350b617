"""Text WER of json against verbose_json through a running gateway, on bench/diarization's
synthetic dialogues: vLLM's Whisper verbose_json drops text its timestamps do not close, and the
gateway asks such windows again as json (voxtral_gateway/verbose_text.py).

    python -m bench.verbose_text --gateway http://127.0.0.1:19800 --out bench/results/x

Reports WER per format, wall time, and the gateway's fallback counter before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import time
from pathlib import Path

import httpx
import soundfile as sf

from bench.accuracy import wer
from bench.dialogue import SAMPLE_RATE_HZ
from bench.diarization import cases


def fallbacks(client: httpx.Client) -> dict[str, float]:
    metrics = client.get("/metrics").text
    found = re.findall(
        r'^voxtral_verbose_text_fallbacks_total\{outcome="(\w+)"\} (\S+)$', metrics, re.M
    )
    return {outcome: float(value) for outcome, value in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", default="dialogue-2min-3-speakers,meeting-10min-4-speakers")
    args = parser.parse_args()
    wanted = args.cases.split(",")
    rows = []
    with httpx.Client(base_url=args.gateway, timeout=3600) as client:
        for case in (c for c in cases() if c.name in wanted):
            buffer = io.BytesIO()
            sf.write(buffer, case.audio, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
            reference = " ".join(turn.text for turn in case.turns)
            for fmt in ("json", "verbose_json"):
                before = fallbacks(client)
                started = time.perf_counter()
                response = client.post(
                    "/v1/audio/transcriptions",
                    files={"file": ("case.wav", buffer.getvalue(), "audio/wav")},
                    data={"model": "m", "response_format": fmt},
                )
                response.raise_for_status()
                seconds = time.perf_counter() - started
                after = fallbacks(client)
                row = {
                    "case": case.name,
                    "format": fmt,
                    "wer": round(wer(reference, response.json()["text"]), 4),
                    "seconds": round(seconds, 1),
                    "fallbacks": {k: v - before.get(k, 0.0) for k, v in after.items()},
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
