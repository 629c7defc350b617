"""Engine step times by kind, from vLLM's `--enable-logging-iteration-details` log lines.

    python bench/gpu/iterations.py ENGINE_LOG FIRST_LINE LAST_LINE WALL_S

vLLM 0.26 logs, per engine step, the context (prefill) and generation (decode) requests and
tokens, the encoder inputs scheduled, and the step's elapsed time (from launch to the model
output being ready, so it covers the GPU work of the step). Summed over a bench window and set
against that window's wall time, this says how busy the engine was and on what:
- steps with encoder inputs: Whisper encoder + decoder prefill (+ the decodes batched with them)
- other steps with context tokens: prefill continuations without a new encoder input
- pure decode steps

Caveat, seen on the H100 (bench/results/h100/run3-final): with vLLM 0.26's asynchronous
scheduling the logged elapsed time came out at ~1 ms per step while the inter-token latency was
13-38 ms, so it is NOT the GPU time of a step and the "busy" share is meaningless there. The step
counts and token/encoder-input counts per kind are still right.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

LINE = re.compile(
    r"Iteration\(\d+\): (?P<ctx_req>\d+) context requests, (?P<ctx_tok>\d+) context tokens, "
    r"(?P<gen_req>\d+) generation requests, (?P<gen_tok>\d+) generation tokens, "
    r"iteration elapsed time: (?P<ms>[\d.]+) ms(?P<dummy> \(dummy\))?"
)
ENCODER = re.compile(r"encoder inputs: (?P<enc>\d+)")


@dataclass
class Bucket:
    steps: int = 0
    ms: float = 0.0
    ctx_tokens: int = 0
    gen_tokens: int = 0
    encoder_inputs: int = 0

    def add(self, match: re.Match[str], encoder_inputs: int) -> None:
        self.steps += 1
        self.ms += float(match["ms"])
        self.ctx_tokens += int(match["ctx_tok"])
        self.gen_tokens += int(match["gen_tok"])
        self.encoder_inputs += encoder_inputs


def main() -> None:
    path, first, last, wall_s = (
        Path(sys.argv[1]),
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    buckets = {"encoder + prefill": Bucket(), "prefill only": Bucket(), "decode only": Bucket()}
    with path.open(errors="replace") as log:
        for number, line in enumerate(log, start=1):
            if number <= first or number > last or "Iteration(" not in line:
                continue
            match = LINE.search(line.rstrip())
            if not match or match["dummy"]:
                continue
            encoder = ENCODER.search(line)
            encoder_inputs = int(encoder["enc"]) if encoder else 0
            if encoder_inputs:
                kind = "encoder + prefill"
            elif int(match["ctx_tok"]):
                kind = "prefill only"
            else:
                kind = "decode only"
            buckets[kind].add(match, encoder_inputs)
    busy_ms = sum(b.ms for b in buckets.values())
    print(
        f"engine steps in {wall_s:.1f} s of wall time: busy {busy_ms / 1e3:.1f} s "
        f"({100 * busy_ms / 1e3 / wall_s:.0f}%)"
    )
    print(
        f"{'step kind':<20}{'steps':>8}{'total s':>9}{'mean ms':>9}{'share':>7}"
        f"{'ctx tok':>10}{'gen tok':>9}{'enc in':>8}"
    )
    for name, b in buckets.items():
        mean = b.ms / b.steps if b.steps else 0.0
        share = 100 * b.ms / busy_ms if busy_ms else 0.0
        print(
            f"{name:<20}{b.steps:>8}{b.ms / 1e3:>9.2f}{mean:>9.2f}{share:>6.0f}%"
            f"{b.ctx_tokens:>10}{b.gen_tokens:>9}{b.encoder_inputs:>8}"
        )


if __name__ == "__main__":
    main()
