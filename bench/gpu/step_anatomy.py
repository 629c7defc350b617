"""Step anatomy of a vLLM torch-profiler trace: where each engine step's wall time goes.

Used by bench/gpu/profile_trace.py. A step starts where the worker's
`execute_context_N(T)_generation_M(U)` annotation starts (N requests with T context tokens,
i.e. new audio windows and their prompts; M decode requests) and ends where the next one starts.
Inside it, the model runner's `gpu_model_runner: <phase>` annotations (only recorded when the
engine ran with VLLM_CUSTOM_SCOPES_FOR_PROFILING=1) give each phase's CPU wall time, and the
kernels whose launch (cuda_runtime / cuda_driver event, matched by correlation id) falls inside a
phase give its GPU time. What is left:
- GPU idle: the step's wall time minus the union of kernel intervals inside it (on the trace's
  common clock), i.e. the GPU waiting for the CPU;
- between steps: from the end of the step's last runner annotation to the next step's start, the
  engine core's scheduler, output processing and IO, outside the model runner.
A second table counts, per phase, the kernel / graph launches and the CPU time inside them and
inside synchronise / copy calls (the CPU waiting for the GPU): a launch-bound phase has many
launches and little waiting, a GPU-bound one the reverse.
A CPU-only trace (the CPU engine) has no kernels: its GPU columns are empty, no second table.
With async scheduling (vLLM's default) the CPU prepares step i+1 while the GPU still runs step
i, so GPU busy / idle, measured over the CPU's step window, mixes neighbouring steps; the
launch-based phase GPU times do not. --no-async-scheduling gives steps that do not overlap.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from dataclasses import dataclass, field

STEP_RE = re.compile(r"^execute_context_(\d+)\((\d+)\)_generation_(\d+)\((\d+)\)")
PHASE_PREFIX = "gpu_model_runner: "
KERNEL_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
LAUNCH_CATS = ("cuda_runtime", "cuda_driver")


@dataclass
class Step:
    start: float
    execute_end: float
    context_requests: int
    context_tokens: int
    decode_requests: int
    end: float = 0.0  # the next step's start
    runner_end: float = 0.0  # end of the last runner annotation in the step
    phase_cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    phase_gpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Other annotations, e.g. the scheduler's `schedule: ...` when it shares the worker's
    # process (one GPU: vLLM's in-process executor); they nest, so not summed into the step.
    other_cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # CUDA runtime / driver calls by (phase, "launches" | "launch ms" | "sync/copy ms").
    runtime: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    gpu_busy: float = 0.0

    @property
    def new_audio(self) -> bool:
        return self.context_tokens > 0


def runtime_kind(name: str) -> str | None:
    """A CUDA runtime call's kind: a kernel or graph launch, or a call that can make the CPU
    wait for the GPU (synchronise, copy)."""
    if "Launch" in name:
        return "launch"
    if "Synchronize" in name or "Memcpy" in name:
        return "sync/copy"
    return None


def is_kernel(event: dict) -> bool:
    return event.get("ph") == "X" and event.get("cat") in KERNEL_CATS


def launch_records(events: list[dict]) -> dict[int, dict]:
    return {
        e["args"]["correlation"]: e
        for e in events
        if e.get("cat") in LAUNCH_CATS and "correlation" in e.get("args", {})
    }


def find_steps(events: list[dict], category: str = "user_annotation") -> list[Step]:
    """Steps in time order; the last one has no successor, so its end is unknown: dropped.

    category: the CPU-side ranges; "gpu_user_annotation" reads the same ranges on the GPU's
    timeline instead (their projection onto the kernels they launched)."""
    steps = []
    for e in events:
        if e.get("cat") != category:
            continue
        match = STEP_RE.match(e.get("name", ""))
        if match:
            n_ctx, ctx_tokens, n_gen, _ = (int(g) for g in match.groups())
            steps.append(Step(e["ts"], e["ts"] + e.get("dur", 0.0), n_ctx, ctx_tokens, n_gen))
    steps.sort(key=lambda s: s.start)
    for step, following in zip(steps, steps[1:], strict=False):
        step.end = following.start
    return steps[:-1]


def _union(intervals: list[tuple[float, float]]) -> float:
    total, current_end = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= current_end:
            continue
        total += end - max(start, current_end)
        current_end = end
    return total


def attribute(events: list[dict], steps: list[Step]) -> None:
    """Fill each step's phase CPU / GPU times, GPU busy time and runner end in place."""
    if not steps:
        return
    starts = [s.start for s in steps]

    def step_at(ts: float) -> Step | None:
        index = bisect.bisect_right(starts, ts) - 1
        return steps[index] if index >= 0 and ts < steps[index].end else None

    phases: list[tuple[float, float, str]] = []
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "user_annotation" or STEP_RE.match(name):
            continue
        start, end = e["ts"], e["ts"] + e.get("dur", 0.0)
        step = step_at(start)
        if not name.startswith(PHASE_PREFIX):
            if step is not None:
                step.other_cpu[name[:60]] += end - start
            continue
        phases.append((start, end, name[len(PHASE_PREFIX) :]))
        if step is not None:
            step.phase_cpu[phases[-1][2]] += end - start
            step.runner_end = max(step.runner_end, end)
    for step in steps:
        step.runner_end = max(step.runner_end, step.execute_end)
    phases.sort()
    phase_starts = [p[0] for p in phases]

    def phase_of(ts: float) -> str:
        index = bisect.bisect_right(phase_starts, ts) - 1
        if index >= 0 and ts <= phases[index][1]:
            return phases[index][2]
        return "(no phase)"

    for call in events:
        kind = runtime_kind(call.get("name", "")) if call.get("cat") in LAUNCH_CATS else None
        step = step_at(call["ts"]) if kind else None
        if step is not None:
            phase = phase_of(call["ts"])
            if kind == "launch":
                step.runtime[(phase, "launches")] += 1
            step.runtime[(phase, f"{kind} ms")] += call.get("dur", 0.0) / 1e3
    launches = launch_records(events)
    busy: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for kernel in filter(is_kernel, events):
        k_start, k_end = kernel["ts"], kernel["ts"] + kernel.get("dur", 0.0)
        launch = launches.get(kernel.get("args", {}).get("correlation"))
        step = step_at(launch["ts"] if launch else k_start)
        if step is not None:
            phase = phase_of(launch["ts"]) if launch else "(no launch record)"
            step.phase_gpu[phase] += k_end - k_start
        # GPU busy by the kernel's own clock, clipped to each step it overlaps.
        index = max(bisect.bisect_right(starts, k_start) - 1, 0)
        while index < len(steps) and steps[index].start < k_end:
            step = steps[index]
            lo, hi = max(k_start, step.start), min(k_end, step.end)
            if hi > lo:
                busy[index].append((lo, hi))
            index += 1
    for index, intervals in busy.items():
        steps[index].gpu_busy = _union(intervals)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def anatomy_table(events: list[dict]) -> str:
    steps, clock = find_steps(events), ""
    if not steps:  # should not happen: the CPU ranges are what the GPU ranges are made from
        steps, clock = find_steps(events, "gpu_user_annotation"), " (steps on the GPU's clock)"
    attribute(events, steps)
    if not steps:
        return "step anatomy: no execute_context_* annotations (two or more steps) in the trace\n"
    kinds = {
        "new audio": [s for s in steps if s.new_audio],
        "decode only": [s for s in steps if not s.new_audio],
    }
    windows = sum(s.context_requests for s in kinds["new audio"])
    phase_names = sorted(
        {name for s in steps for name in (*s.phase_cpu, *s.phase_gpu)},
        key=lambda name: -sum(s.phase_cpu.get(name, 0.0) for s in steps),
    )
    # Rows: (label, CPU-ms getter, GPU-ms getter or None).
    has_gpu = any(is_kernel(e) for e in events)
    rows = [
        ("step wall (start to next start)", lambda s: s.end - s.start, lambda s: s.gpu_busy),
        ("  execute_model range", lambda s: s.execute_end - s.start, None),
    ]
    for name in phase_names:
        rows.append(
            (
                f"  {name}",
                lambda s, n=name: s.phase_cpu.get(n, 0.0),
                lambda s, n=name: s.phase_gpu.get(n, 0.0),
            )
        )
    rows += [
        (
            "  runner, outside phases",
            lambda s: s.runner_end - s.start - sum(s.phase_cpu.values()),
            None,
        ),
        ("  between steps (outside runner)", lambda s: s.end - s.runner_end, None),
    ]
    for name in sorted({name for s in steps for name in s.other_cpu}):
        rows.append((f"  (other) {name}", lambda s, n=name: s.other_cpu.get(n, 0.0), None))
    if has_gpu:
        rows.append(("  GPU idle in step", lambda s: s.end - s.start - s.gpu_busy, None))
    new, decode = kinds["new audio"], kinds["decode only"]
    lines = [
        f"step anatomy: {len(new)} steps with new audio ({windows} context requests = new "
        f"windows or chunks), {len(decode)} decode-only{clock}; means in ms (CPU: annotation wall "
        "time; GPU: kernels launched inside it, step row: GPU busy)",
        f"{'':<36}{'new audio step':>18}{'decode step':>18}{'per new window':>18}"
        f"{'extra per window':>18}",
        f"{'':<36}" + f"{'CPU':>9}{'GPU':>9}" * 4,
    ]

    def cell(values: list[float], gpu: bool) -> str:
        return f"{'-':>9}" if gpu and not has_gpu else f"{_mean(values) / 1e3:>9.2f}"

    for label, cpu_of, gpu_of in rows:
        line = f"{label[:35]:<36}"
        per_kind = {}
        for kind, members in kinds.items():
            cpu = [cpu_of(s) for s in members]
            gpu = [gpu_of(s) for s in members] if gpu_of else []
            per_kind[kind] = (cpu, gpu)
            line += cell(cpu, False) + (cell(gpu, True) if gpu_of else f"{'':>9}")
        # Per window: the new-audio steps' total over the windows they took; extra: what those
        # steps cost beyond a decode-only step, over the same windows.
        for extra in (False, True):
            for index in (0, 1):
                if index == 1 and gpu_of is None:
                    line += f"{'':>9}"
                    continue
                if index == 1 and not has_gpu:
                    line += f"{'-':>9}"
                    continue
                total = sum(per_kind["new audio"][index])
                if extra:
                    total -= len(new) * _mean(per_kind["decode only"][index])
                line += f"{total / max(windows, 1) / 1e3:>9.2f}"
        lines.append(line.rstrip())
    if has_gpu:
        lines += runtime_table(kinds)
    return "\n".join(lines) + "\n"


def runtime_table(kinds: dict[str, list[Step]]) -> list[str]:
    """Per phase: kernel / graph launches, the CPU time in them and in calls that wait."""
    columns = ("launches", "launch ms", "sync/copy ms")
    phases = sorted({key[0] for steps in kinds.values() for s in steps for key in s.runtime})
    lines = [
        "",
        "CUDA runtime calls, means per step: count of kernel / graph launches, CPU ms inside "
        "launches, CPU ms inside synchronise / copy calls (the CPU waiting for the GPU)",
        f"{'':<36}" + "".join(f"{kind + ' step':>42}" for kind in kinds),
        f"{'':<36}" + "".join(f"{c:>14}" for c in columns) * len(kinds),
    ]
    for phase in phases:
        line = f"  {phase[:33]:<34}"
        for steps in kinds.values():
            for column in columns:
                value = _mean([s.runtime.get((phase, column), 0.0) for s in steps])
                line += f"{value:>14.1f}" if column == "launches" else f"{value:>14.2f}"
        lines.append(line)
    return lines


def trim(events: list[dict]) -> list[dict]:
    """Only what the summaries read: annotations, kernels, launches, syncs, thread names."""
    kernels = [e for e in events if is_kernel(e)]
    correlations = {k.get("args", {}).get("correlation") for k in kernels}
    kept = []
    for e in events:
        cat = e.get("cat")
        if e.get("ph") == "M":
            kept.append(e)
        elif cat in ("user_annotation", "gpu_user_annotation"):
            kept.append(_slim(e, ()))
        elif cat in KERNEL_CATS:
            kept.append(_slim(e, ("correlation", "stream", "device")))
        elif cat in LAUNCH_CATS and (
            e.get("args", {}).get("correlation") in correlations or runtime_kind(e.get("name", ""))
        ):
            kept.append(_slim(e, ("correlation",)))
    return kept


def _slim(event: dict, args: tuple[str, ...]) -> dict:
    slim = {k: event[k] for k in ("ph", "cat", "name", "pid", "tid", "ts", "dur") if k in event}
    slim["name"] = slim.get("name", "")[:200]
    kept_args = {k: v for k, v in event.get("args", {}).items() if k in args}
    if kept_args:
        slim["args"] = kept_args
    return slim
