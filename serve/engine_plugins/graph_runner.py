"""Replays one encoder call from CUDA graphs: one graph per batch size B, no padding.

Why: vLLM compiles and graphs only Voxtral's decoder; its Whisper encoder (32 layers) runs
eagerly, ~400 kernel launches per call, so a step that admits new audio is bound by the CPU
launching kernels, not by the GPU running them. A graph replays all of them in one launch.

Bitwise identity with the eager path (the engine's transcripts must not change): a graph is
captured for exactly the B it serves, so every kernel gets the shapes, strides and alignment
(buffers are allocator blocks or views starting at one) that eager gives it, and picks the same
kernel. That is checked, not assumed: the capture call runs the encoder eagerly once on the same
input, replays the new graph, and keeps the graph only if the bytes are equal; else that B stays
eager for the life of the engine. A failed capture also leaves its B eager (logged).

When: on the *second* call with a given B. vLLM's first encoder call is the start-up
`profile_run` (dummy max-size batch, before the KV cache is sized); capturing there would size
the pool for a dummy B and count it as activation peak. Capturing afterwards takes the graph
pool from the headroom that `--gpu-memory-utilization` leaves (0.9 of an H200: ~14 GB).

Memory: all graphs share one private pool, and no graph keeps a tensor in it once its capture
ends: inputs go in through one static buffer of `max_batch` rows and results come out through
one static output buffer of `max_batch` rows, both outside the pool. So graphs may be replayed
in any order (torch's rule for sharing a pool is that live outputs must not be overwritten by
another graph; here none are live), and the pool only needs the largest capture's peak of
intermediates. Each call's result is cloned out of the static output before returning, so the
next replay cannot overwrite a result a caller still holds.

Backends are injectable (`GraphBackend`) so the dispatch and the capture/replay protocol run
in tests without a GPU; `CudaGraphBackend` is the real one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

logger = logging.getLogger("vllm.voxtral_engine_plugins.encoder_cuda_graphs")

Encode = Callable[[torch.Tensor], torch.Tensor]
Replay = Callable[[], None]

CAPTURE_FROM_CALL = 2
"""Capture a B on its second call: the first is vLLM's start-up profile_run (see above)."""


@dataclass(frozen=True)
class InputSpec:
    """The only inputs that run from graphs: contiguous [B, n_mels, frames] `dtype` tensors
    on a `device_type` device with 1 <= B <= max_batch."""

    n_mels: int
    frames: int
    dtype: torch.dtype
    max_batch: int
    device_type: str = "cuda"

    def graph_batch(self, x: torch.Tensor) -> int | None:
        """B if `x` may run from a graph, None if it must take the eager path."""
        if x.device.type != self.device_type or x.dtype != self.dtype or x.dim() != 3:
            return None
        batch, n_mels, frames = x.shape
        if (n_mels, frames) != (self.n_mels, self.frames) or not 1 <= batch <= self.max_batch:
            return None
        return batch if x.is_contiguous() else None


class GraphBackend(Protocol):
    """How graphs are made; `CudaGraphBackend` on a GPU, a stand-in in tests."""

    def warm_up(self, encode: Encode, static_input: torch.Tensor) -> torch.Tensor:
        """Run `encode` eagerly once (lazy kernel/workspace set-up); return its output."""
        ...

    def capture(
        self, encode: Encode, static_input: torch.Tensor, static_output: torch.Tensor
    ) -> Replay:
        """Record `static_output.copy_(encode(static_input))`; return what replays it."""
        ...

    def free_bytes(self) -> int:
        """Free device memory now (to log what a capture took)."""
        ...


class CudaGraphBackend:
    """torch.cuda graphs on one device: one side stream for warm-up and capture, one pool."""

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._stream = torch.cuda.Stream(device=device)
        self._pool = torch.cuda.graph_pool_handle()

    def warm_up(self, encode: Encode, static_input: torch.Tensor) -> torch.Tensor:
        # torch's recipe: warm up on a side stream that waits for the current one. The same
        # stream then captures, so its cuBLAS workspace already exists before capture.
        current = torch.cuda.current_stream(self._device)
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            output = encode(static_input)
        current.wait_stream(self._stream)
        output.record_stream(current)  # used and freed on the current stream from here
        return output

    def capture(
        self, encode: Encode, static_input: torch.Tensor, static_output: torch.Tensor
    ) -> Replay:
        graph = torch.cuda.CUDAGraph()
        # thread_local: vLLM's other threads (e.g. async output copies) may call CUDA while
        # this thread captures; only this thread's calls must be capture-safe.
        with torch.cuda.graph(
            graph, pool=self._pool, stream=self._stream, capture_error_mode="thread_local"
        ):
            static_output.copy_(encode(static_input))
        return graph.replay

    def free_bytes(self) -> int:
        torch.cuda.synchronize(self._device)
        torch.cuda.empty_cache()
        return torch.cuda.mem_get_info(self._device)[0]


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same bytes (unlike `torch.equal`, NaN equals itself and -0.0 differs from 0.0)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


class BatchGraphRunner:
    """`runner(x)` equals `encode(x)` bit for bit; inputs that `spec` accepts run from graphs."""

    def __init__(
        self,
        encode: Encode,
        spec: InputSpec,
        backend_factory: Callable[[torch.device], GraphBackend] = CudaGraphBackend,
    ) -> None:
        self._encode = encode
        self._spec = spec
        self._backend_factory = backend_factory
        self._backend: GraphBackend | None = None
        self._calls: Counter[int] = Counter()
        self._replays: dict[int, Replay] = {}
        self._eager_batches: set[int] = set()
        """B whose capture failed or differed from eager: eager for good."""
        self._static_input: torch.Tensor | None = None
        self._static_output: torch.Tensor | None = None
        self._captured_bytes = 0
        self._logged_eager: set[object] = set()

    @property
    def captured_batches(self) -> list[int]:
        return sorted(self._replays)

    @property
    def eager_batches(self) -> list[int]:
        return sorted(self._eager_batches)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = None if torch.is_grad_enabled() else self._spec.graph_batch(x)
        if batch is None or batch in self._eager_batches:
            self._log_eager_once(x)
            return self._encode(x)
        replay = self._replays.get(batch)
        if replay is not None:
            assert self._static_input is not None and self._static_output is not None
            self._static_input[:batch].copy_(x)
            replay()
            return self._static_output[:batch].clone()
        self._calls[batch] += 1
        if self._calls[batch] < CAPTURE_FROM_CALL:
            return self._encode(x)
        return self._capture(batch, x)

    def _capture(self, batch: int, x: torch.Tensor) -> torch.Tensor:
        """Capture B's graph; return the eager output for `x` (equal to the graph's if kept).

        Whatever goes wrong while capturing leaves B eager for good (logged with its traceback)
        and this call falls back to the plain eager call: the engine keeps serving unchanged.
        """
        started = time.perf_counter()
        try:
            eager, replay, taken = self._try_capture(batch, x)
        except Exception:
            logger.exception("encoder CUDA graph capture for B=%d failed: B stays eager", batch)
            self._eager_batches.add(batch)
            return self._encode(x)
        if replay is None:
            logger.warning(
                "encoder CUDA graph for B=%d differs from eager output: discarded, B stays eager",
                batch,
            )
            self._eager_batches.add(batch)
            return eager
        self._replays[batch] = replay
        self._captured_bytes += taken
        logger.info(
            "encoder CUDA graph captured for B=%d [%d, %d, %d] in %.3f s; bitwise equal to "
            "eager: True; device memory +%.1f MiB (all graphs %.1f MiB, %d graphs)",
            batch, batch, self._spec.n_mels, self._spec.frames, time.perf_counter() - started,
            taken / 2**20, self._captured_bytes / 2**20, len(self._replays),
        )  # fmt: skip
        return eager

    def _try_capture(self, batch: int, x: torch.Tensor) -> tuple[torch.Tensor, Replay | None, int]:
        """(eager output, replay or None if the graph's bytes differ, device bytes taken)."""
        if self._backend is None:
            self._backend = self._backend_factory(x.device)
        backend = self._backend
        if self._static_input is None:
            self._static_input = torch.empty(
                (self._spec.max_batch, *x.shape[1:]), dtype=x.dtype, device=x.device
            )
        static_input = self._static_input[:batch]
        static_input.copy_(x)
        eager = backend.warm_up(self._encode, static_input)
        if self._static_output is None:
            self._static_output = torch.empty(
                (self._spec.max_batch, *eager.shape[1:]), dtype=eager.dtype, device=eager.device
            )
        static_output = self._static_output[:batch]
        if eager.shape != static_output.shape or eager.dtype != static_output.dtype:
            raise ValueError(
                f"encoder output {tuple(eager.shape)} {eager.dtype} does not fit the static "
                f"output {tuple(static_output.shape)} {static_output.dtype}"
            )
        free_before = backend.free_bytes()
        replay = backend.capture(self._encode, static_input, static_output)
        replay()
        identical = bitwise_equal(static_output, eager)
        taken = free_before - backend.free_bytes()
        return eager, (replay if identical else None), taken

    def _log_eager_once(self, x: torch.Tensor) -> None:
        """Say once per device type, and once per B above the bound, why inputs run eagerly."""
        spec = self._spec
        if x.device.type != spec.device_type:
            key: object = x.device.type
            message = (
                f"voxtral encoder input on {x.device.type}: eager path "
                f"(CUDA graphs only for {spec.device_type})"
            )
        elif x.dim() == 3 and x.shape[0] > spec.max_batch:
            key = int(x.shape[0])
            message = f"voxtral encoder B={key} above the graph bound {spec.max_batch}: eager path"
        else:
            return
        if key not in self._logged_eager:
            self._logged_eager.add(key)
            logger.info(message)
