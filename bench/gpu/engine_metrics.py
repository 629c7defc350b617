"""Where time went, from a vLLM or gateway `/metrics` scrape (Prometheus text format).

    python bench/gpu/engine_metrics.py engine-metrics.txt [earlier-scrape.txt]

With two scrapes, prints the difference (the window between them). vLLM 0.26 has no separate
encoder timer: the Whisper encoder runs inside the prefill step, so `prefill` = encoder +
decoder prefill, from the request's first scheduling to its first token.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")
PHASES = {
    "queue": "vllm:request_queue_time_seconds",
    "prefill (encoder + prompt)": "vllm:request_prefill_time_seconds",
    "decode": "vllm:request_decode_time_seconds",
    "inference (prefill + decode)": "vllm:request_inference_time_seconds",
    "time to first token": "vllm:time_to_first_token_seconds",
    "end to end": "vllm:e2e_request_latency_seconds",
    "inter-token latency": "vllm:inter_token_latency_seconds",
    # The gateway's own stages (voxtral_gateway/metrics.py), when given its scrape.
    "gateway decode": "voxtral_decode_seconds",
    "gateway VAD": "voxtral_vad_seconds",
    "gateway upstream": "voxtral_upstream_seconds",
    "gateway request": "voxtral_request_seconds",
}
COUNTERS = {
    "prompt tokens": "vllm:prompt_tokens_total",
    "generation tokens": "vllm:generation_tokens_total",
    "requests finished": "vllm:request_success_total",
    "preemptions": "vllm:num_preemptions_total",
    "gateway audio seconds": "voxtral_audio_seconds_total",
    "gateway speech seconds": "voxtral_speech_seconds_total",
    "gateway segments": "voxtral_segments_total",
    "gateway engine windows": "voxtral_engine_windows_total",
}


def parse(path: Path) -> dict[str, float]:
    """Sum every sample over its labels (one engine, so mostly one series per name)."""
    totals: dict[str, float] = defaultdict(float)
    for line in path.read_text().splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            try:
                totals[match["name"]] += float(match["value"])
            except ValueError:
                continue
    return totals


def main() -> None:
    now = parse(Path(sys.argv[1]))
    before = parse(Path(sys.argv[2])) if len(sys.argv) > 2 else defaultdict(float)

    def delta(name: str) -> float:
        return now.get(name, 0.0) - before.get(name, 0.0)

    print(f"{'phase':<30}{'count':>9}{'total s':>12}{'mean ms':>10}")
    for label, name in PHASES.items():
        count, total = delta(f"{name}_count"), delta(f"{name}_sum")
        if not count:
            continue
        mean = 1e3 * total / count if count else float("nan")
        print(f"{label:<30}{count:>9.0f}{total:>12.2f}{mean:>10.1f}")
    for label, name in COUNTERS.items():
        if name not in now:
            continue
        print(f"{label:<30}{delta(name):>9.0f}")
    audio_s = delta("voxtral_audio_seconds_total")
    if audio_s and "voxtral_engine_windows_total" in now:
        per_minute = 60 * delta("voxtral_engine_windows_total") / audio_s
        print(f"{'gateway windows / audio min':<30}{per_minute:>9.2f}")


if __name__ == "__main__":
    main()
