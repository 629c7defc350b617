"""bench/gpu/step_anatomy.py: engine steps, their kinds and phase attribution from a trace.

The trace is synthetic: a parser's input, written here in the shape of a torch-profiler trace of
vLLM (user_annotation ranges, cuda_runtime launches and kernels matched by correlation id).
"""

from __future__ import annotations

import pytest

from bench.gpu.step_anatomy import anatomy_table, attribute, find_steps, trim

MS = 1000.0  # trace times are microseconds; the events below are written in ms


def annotation(name: str, ts: float, dur: float) -> dict:
    return {
        "ph": "X", "cat": "user_annotation", "name": name, "pid": 1, "tid": 1,
        "ts": ts * MS, "dur": dur * MS,
    }  # fmt: skip


def phase(name: str, ts: float, dur: float) -> dict:
    return annotation(f"gpu_model_runner: {name}", ts, dur)


def launch(ts: float, correlation: int) -> dict:
    return {
        "ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1,
        "ts": ts * MS, "dur": 1, "args": {"correlation": correlation, "cbid": 211},
    }  # fmt: skip


def kernel(ts: float, dur: float, correlation: int) -> dict:
    return {
        "ph": "X", "cat": "kernel", "name": f"gemm_{correlation}", "pid": 0, "tid": 7,
        "ts": ts * MS, "dur": dur * MS, "args": {"correlation": correlation, "grid": [1, 1, 1]},
    }  # fmt: skip


# Step A (t=0..100): two new windows (760 context tokens) beside 3 decodes. Its sample and
# bookkeep run after the execute_model range (sample_tokens is a separate call), then the CPU
# is outside the runner until step B. Step B (t=100..130): decode only. Step C only ends B.
NEW_AUDIO = "execute_context_2(760)_generation_3(3)"
DECODE = "execute_context_0(0)_generation_5(5)"
STEPS = [annotation(NEW_AUDIO, 0, 50), annotation(DECODE, 100, 10), annotation(DECODE, 130, 10)]
PHASES = [
    phase("preprocess", 0, 30),
    phase("forward", 30, 15),
    phase("sample", 55, 5),
    phase("bookkeep", 60, 2),
    phase("forward", 100, 8),
    phase("sample", 112, 2),
]
LAUNCHES_AND_KERNELS = [
    launch(5, 1), kernel(10, 10, 1),  # encoder kernel, from preprocess
    launch(35, 2), kernel(40, 20, 2),  # decoder, from forward
    launch(44, 5), kernel(95, 10, 5),  # from A's forward, runs across the step boundary
    launch(56, 3), kernel(70, 5, 3),  # sampler
    launch(101, 4), kernel(105, 3, 4),  # B's forward
    kernel(120, 2, 99),  # no launch record: GPU busy, charged by its own start
]  # fmt: skip
SCHEDULE = annotation("schedule: allocate_slots", 90, 4)  # between A and B, outside the runner
CPU_OP = {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 36e3, "dur": 1}
SYNC = {**launch(57, 1235), "name": "cudaStreamSynchronize", "dur": 3 * MS}  # in A's sample
EVENT_RECORD = {**launch(80, 1234), "name": "cudaEventRecord"}  # neither a launch nor a wait
EVENTS = [*STEPS, *PHASES, *LAUNCHES_AND_KERNELS, SCHEDULE, SYNC, CPU_OP, EVENT_RECORD]


def ms(value: float) -> float:
    return round(value / MS, 6)


def test_steps_are_split_by_execute_context_and_kinded_by_context_tokens() -> None:
    steps = find_steps(EVENTS)
    # C has no end: dropped.
    assert [(ms(s.start), ms(s.end)) for s in steps] == [(0, 100), (100, 130)]
    assert [s.new_audio for s in steps] == [True, False]
    assert (steps[0].context_requests, steps[0].context_tokens) == (2, 760)


def test_phases_get_cpu_time_and_the_gpu_time_of_kernels_they_launched() -> None:
    steps = find_steps(EVENTS)
    attribute(EVENTS, steps)
    new, decode = steps
    assert {k: ms(v) for k, v in new.phase_cpu.items()} == {
        "preprocess": 30, "forward": 15, "sample": 5, "bookkeep": 2,
    }  # fmt: skip
    assert {k: ms(v) for k, v in new.phase_gpu.items()} == {
        "preprocess": 10, "forward": 30, "sample": 5,
    }  # fmt: skip
    assert {k: ms(v) for k, v in decode.phase_gpu.items()} == {
        "forward": 3, "(no launch record)": 2,
    }  # fmt: skip
    assert {k: ms(v) for k, v in new.other_cpu.items()} == {"schedule: allocate_slots": 4}
    # The runner ends with bookkeep (after the execute_model range): 38 ms outside it.
    assert ms(new.end - new.runner_end) == 38
    assert ms(decode.end - decode.runner_end) == 16
    # GPU busy on its own clock, clipped to the step: 10-20, 40-60, 70-75, 95-100 in A;
    # 100-108 (the straddling kernel's tail and B's own) and 120-122 in B.
    assert (ms(new.gpu_busy), ms(decode.gpu_busy)) == (40, 10)


def test_launches_and_waits_are_counted_per_phase() -> None:
    steps = find_steps(EVENTS)
    attribute(EVENTS, steps)
    new, decode = steps
    assert dict(new.runtime) == {
        ("preprocess", "launches"): 1, ("preprocess", "launch ms"): 0.001,
        ("forward", "launches"): 2, ("forward", "launch ms"): 0.002,
        ("sample", "launches"): 1, ("sample", "launch ms"): 0.001,
        ("sample", "sync/copy ms"): 3,
    }  # fmt: skip
    assert dict(decode.runtime) == {("forward", "launches"): 1, ("forward", "launch ms"): 0.001}
    table = anatomy_table(EVENTS)
    sample = [line for line in table.splitlines() if line.strip().startswith("sample")][-1]
    assert sample.split()[1:] == ["1.0", "0.00", "3.00", "0.0", "0.00", "0.00"]


def test_table_has_a_row_per_phase_and_per_window_means() -> None:
    table = anatomy_table(EVENTS)
    assert "1 steps with new audio (2 context requests" in table
    assert "1 decode-only" in table
    preprocess = next(line for line in table.splitlines() if line.strip().startswith("preprocess"))
    # new-audio step CPU, GPU; decode step CPU, GPU; per window CPU, GPU; extra per window.
    assert preprocess.split()[1:] == [
        "30.00", "10.00", "0.00", "0.00", "15.00", "5.00", "15.00", "5.00",
    ]  # fmt: skip


def test_a_cpu_only_trace_leaves_the_gpu_columns_empty() -> None:
    events = [*STEPS, *PHASES]
    table = anatomy_table(events)
    forward = next(line for line in table.splitlines() if line.strip().startswith("forward"))
    # extra per window: (15 - 8) ms over the 2 windows.
    assert forward.split()[1:] == ["15.00", "-", "8.00", "-", "7.50", "-", "3.50", "-"]


def test_trim_keeps_what_the_summaries_read() -> None:
    kept = trim(EVENTS)
    assert {"aten::mm", "cudaEventRecord"}.isdisjoint(e["name"] for e in kept)
    assert len(kept) == len(STEPS) + len(PHASES) + len(LAUNCHES_AND_KERNELS) + 2
    assert all("grid" not in e.get("args", {}) and "cbid" not in e.get("args", {}) for e in kept)
    steps = find_steps(kept)
    attribute(kept, steps)
    assert [ms(s.gpu_busy) for s in steps] == [40, 10]
    assert anatomy_table(kept) == anatomy_table(EVENTS)


@pytest.mark.parametrize("events", [[], [annotation(DECODE, 0, 10)]])
def test_fewer_than_two_steps_say_so(events: list[dict]) -> None:
    assert "no execute_context_" in anatomy_table(events)


def test_gpu_side_step_ranges_are_the_fallback() -> None:
    gpu_steps = [{**step, "cat": "gpu_user_annotation"} for step in STEPS]
    table = anatomy_table([*gpu_steps, *PHASES, *LAUNCHES_AND_KERNELS])
    assert "1 decode-only (steps on the GPU's clock)" in table
