"""Where a saturated engine's GPU time goes, from vLLM's torch-profiler trace of a few steps.

    python bench/gpu/profile_trace.py TRACE_DIR|TRACE [--out summary.txt] [--trim trimmed.json.gz]

Reads every `*.pt.trace.json[.gz]` under TRACE_DIR (vLLM's `--profiler-config` with
`profiler=torch`, between `POST /start_profile` and `/stop_profile`) and prints:
- the GPU's busy share: union of kernel intervals over the span from the first to the last
  kernel (the rest is the GPU waiting for the CPU: scheduling, input prep, launches);
- GPU time by model-runner phase: each kernel is charged to the `gpu_model_runner: ...`
  annotation around the CPU call that launched it (preprocess holds the audio encoder,
  forward the decoder's prefill + decode, sample the sampler);
- GPU time by kernel family (attention, GEMM, the encoder's convolutions, elementwise...);
- the step anatomy (bench/gpu/step_anatomy.py): per engine step with new audio vs decode-only,
  each runner phase's CPU wall time and GPU kernel time, the GPU's idle time and the CPU time
  between steps. A CPU engine's trace gets this table only.
--trim writes the engine trace cut down to what these summaries read (annotations, kernels and
their launches), gzip'd: small enough to bring back from the device and summarise again.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import json
import re
from collections import defaultdict
from pathlib import Path

from step_anatomy import anatomy_table, trim

FAMILIES = (
    ("attention", re.compile(r"flash|fmha|attn|attention", re.I)),
    ("gemm", re.compile(r"gemm|nvjet|cutlass|sm90_xmma|cublas|matmul|wgmma", re.I)),
    ("convolution", re.compile(r"conv|implicit_convolve|winograd", re.I)),
    ("norm", re.compile(r"norm", re.I)),
    ("copy / memset", re.compile(r"memcpy|memset|copy", re.I)),
    ("triton (compiled)", re.compile(r"^triton_", re.I)),
    ("elementwise / reduce", re.compile(r"elementwise|reduce|vectorized|unrolled", re.I)),
)
PHASE_PREFIX = "gpu_model_runner: "


def load_events(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as file:
        return json.load(file).get("traceEvents", [])


def family(name: str) -> str:
    for label, pattern in FAMILIES:
        if pattern.search(name):
            return label
    return "other"


def busy_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals."""
    total, current_end = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if start > current_end:
            total += end - start
            current_end = end
        elif end > current_end:
            total += end - current_end
            current_end = end
    return total


def summarise(events: list[dict]) -> str:
    kernels = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy")]
    if not kernels:
        return "no GPU kernels in the trace\n"
    launches = {
        e["args"]["correlation"]: e
        for e in events
        if e.get("cat") == "cuda_runtime" and "correlation" in e.get("args", {})
    }
    # Phase annotations per CPU thread, sorted by start: they do not nest in each other.
    phases: dict[tuple, list[tuple[float, float, str]]] = defaultdict(list)
    steps = 0
    for e in events:
        if e.get("cat") == "user_annotation" and e.get("name", "").startswith(PHASE_PREFIX):
            phases[(e["pid"], e["tid"])].append(
                (e["ts"], e["ts"] + e.get("dur", 0), e["name"][len(PHASE_PREFIX) :])
            )
            steps += e["name"] == PHASE_PREFIX + "forward"
    if not steps:  # no VLLM_CUSTOM_SCOPES_FOR_PROFILING: count the worker's step annotations
        steps = sum(e.get("name", "").startswith("execute_context_") for e in events)
    starts = {key: [p[0] for p in sorted(v)] for key, v in phases.items()}
    for value in phases.values():
        value.sort()

    def phase_of(kernel: dict) -> str:
        launch = launches.get(kernel.get("args", {}).get("correlation"))
        if launch is None:
            return "(no launch record)"
        key = (launch["pid"], launch["tid"])
        index = bisect.bisect_right(starts.get(key, []), launch["ts"]) - 1
        if index >= 0:
            start, end, name = phases[key][index]
            if start <= launch["ts"] <= end:
                return name
        return "(outside the model runner)"

    by_phase: dict[str, float] = defaultdict(float)
    by_family: dict[str, float] = defaultdict(float)
    by_name: dict[str, float] = defaultdict(float)
    for kernel in kernels:
        duration = kernel.get("dur", 0.0)
        by_phase[phase_of(kernel)] += duration
        by_family[family(kernel["name"])] += duration
        by_name[kernel["name"][:90]] += duration
    first = min(k["ts"] for k in kernels)
    last = max(k["ts"] + k.get("dur", 0.0) for k in kernels)
    span = last - first
    busy = busy_us([(k["ts"], k["ts"] + k.get("dur", 0.0)) for k in kernels])
    total = sum(by_phase.values())
    lines = [
        f"span {span / 1e3:.1f} ms, {steps} forward passes "
        f"({span / 1e3 / max(steps, 1):.1f} ms a step), GPU busy {busy / 1e3:.1f} ms "
        f"= {100 * busy / span:.1f}% of the span; kernel time {total / 1e3:.1f} ms",
        "",
        f"{'phase (CPU annotation of the launch)':<40}{'GPU ms':>10}{'share':>8}",
    ]
    for name, value in sorted(by_phase.items(), key=lambda kv: -kv[1]):
        lines.append(f"{name:<40}{value / 1e3:>10.1f}{100 * value / total:>7.1f}%")
    lines += ["", f"{'kernel family':<40}{'GPU ms':>10}{'share':>8}"]
    for name, value in sorted(by_family.items(), key=lambda kv: -kv[1]):
        lines.append(f"{name:<40}{value / 1e3:>10.1f}{100 * value / total:>7.1f}%")
    lines += ["", f"{'top kernels':<92}{'GPU ms':>10}"]
    for name, value in sorted(by_name.items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"{name:<92}{value / 1e3:>10.1f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace_dir", type=Path, help="a folder of traces, or one trace file")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--trim", type=Path, help="write the first engine trace, trimmed, here")
    args = parser.parse_args()
    # A file: e.g. a trace-trimmed.json.gz brought back from the device.
    is_file = args.trace_dir.is_file()
    paths = [args.trace_dir] if is_file else sorted(args.trace_dir.rglob("*.pt.trace.json*"))
    report, trimmed = [], False
    for path in paths:
        events = load_events(path)
        has_kernels = any(e.get("cat") == "kernel" for e in events)
        has_steps = any(e.get("name", "").startswith("execute_context_") for e in events)
        if not (has_kernels or has_steps):
            continue  # the API server's trace
        summary = summarise(events) + "\n" if has_kernels else ""
        report.append(f"== {path.name}\n{summary}{anatomy_table(events)}")
        if args.trim and not trimmed:
            trimmed = True
            with gzip.open(args.trim, "wt") as file:
                json.dump({"traceEvents": trim(events)}, file, separators=(",", ":"))
    text = "\n".join(report) or f"no engine trace under {args.trace_dir}\n"
    if args.out:  # before printing: a `| head` reader may close the pipe early
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
