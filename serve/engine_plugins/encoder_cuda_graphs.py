"""Engine plugin `encoder_cuda_graphs`: Voxtral's Whisper audio encoder replayed from CUDA graphs.

`register()` replaces `VoxtralEncoderModel.forward` (vLLM 0.26 on the GPU, 0.32 on the CPU:
the method is the same in both) with a copy whose one line
`out = self.whisper_encoder([input_embeds])` goes through a `BatchGraphRunner` instead (see
graph_runner.py for what is captured, when, and why it is bitwise identical to eager). The
input there is [B, n_mels, chunk_size]: B is the number of 30 s chunks this step admits; Voxtral
pads audio to 30 s multiples, so the last two dimensions never change and B alone picks a graph.

Only CUDA tensors with 1 <= B <= `VOXTRAL_ENGINE_ENCODER_GRAPHS_MAX_BATCH` use graphs. Any
other input, and every input on the CPU engine, takes the original eager call unchanged.

A/B in one engine (bench/gpu/runs/h200_encgraph_ab.sh): while the file named by
`VOXTRAL_ENGINE_ENCODER_GRAPHS_PAUSE_FILE` exists, every call runs vLLM's own forward, untouched,
so the unpatched encoder and the graphs are measured on the same engine, minutes apart, without
a second cold start (~100-140 s of device time on an H200). Unset (the default): never paused.

Results leave the runner as fresh tensors (cloned from the static output), as eager ones do.
vLLM would also be safe without the clone: `embed_multimodal` pads (a copy), reshapes and
`torch.cat`s the chunks into a new tensor before anything else runs the encoder, and the
adapter's output is new again; the clone (~120 MB at B=32, tens of microseconds) keeps the
method's contract for any other caller.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import torch

from serve.engine_plugins.graph_runner import BatchGraphRunner, InputSpec

logger = logging.getLogger("vllm.voxtral_engine_plugins.encoder_cuda_graphs")

MAX_BATCH_ENV = "VOXTRAL_ENGINE_ENCODER_GRAPHS_MAX_BATCH"
PAUSE_FILE_ENV = "VOXTRAL_ENGINE_ENCODER_GRAPHS_PAUSE_FILE"
DEFAULT_MAX_BATCH = 48
"""Largest B given a graph. 48 covers every B the H200 profile can schedule (its 16,384-token
step budget holds at most 43 windows of 375 audio tokens). Memory, bf16, per 30 s chunk: ~40 MB
of intermediates at the peak (MLP: 1500x5120 twice plus the 1500x1280 residual), so the shared
pool holds ~1.3 GB at B=32 and ~1.9 GB at B=48 (plus allocator slack); the static buffers
(input 0.77 MB + output 3.84 MB per row) add 221 MB at 48. vLLM's start-up profile does not
see any of it: it comes out of the headroom --gpu-memory-utilization leaves (~14 GB on an H200
at 0.9)."""

_RUNNER_ATTR = "_voxtral_encoder_graph_runner"
_PATCHED_ATTR = "_voxtral_encoder_graphs_original"


MEASURED_VLLM_RELEASES = ("0.26.",)
"""vLLM releases whose GPU engine ran the graphs against its own eager encoder with identical
transcripts (bench/results/h100/run8-encoder-graphs/). On any other release the plugin keeps
the eager path unless VOXTRAL_ENGINE_ENCODER_GRAPHS_MAX_BATCH asks for graphs: e.g. the
RunPod and Compose images run vLLM 0.32, whose CUDA engine was never measured with them."""


def max_batch_from_env(vllm_version: str | None = None) -> int:
    """`VOXTRAL_ENGINE_ENCODER_GRAPHS_MAX_BATCH`; 0 turns graphs off. Unset: 48 on a measured
    vLLM release (`vllm_version`, default the running one), 0 on any other."""
    raw = os.environ.get(MAX_BATCH_ENV, "").strip()
    if not raw:
        version = vllm_version if vllm_version is not None else _running_vllm_version()
        return DEFAULT_MAX_BATCH if version.startswith(MEASURED_VLLM_RELEASES) else 0
    value = int(raw)
    if value < 0:
        raise ValueError(f"{MAX_BATCH_ENV} must be >= 0, got {value}")
    return value


def _running_vllm_version() -> str:
    import vllm

    return str(getattr(vllm, "__version__", ""))


def pause_file_from_env() -> Path | None:
    """The file whose existence sends every call to vLLM's own forward; None: never paused."""
    raw = os.environ.get(PAUSE_FILE_ENV, "").strip()
    return Path(raw) if raw else None


def register() -> None:
    """Patch `VoxtralEncoderModel.forward` once per process; log one line saying so."""
    from vllm.model_executor.models import voxtral
    from vllm.platforms import current_platform

    encoder_cls = voxtral.VoxtralEncoderModel
    version = _running_vllm_version()
    max_batch = max_batch_from_env(version)
    on_cuda = current_platform.is_cuda()
    if getattr(encoder_cls, _PATCHED_ATTR, None) is None:
        original = encoder_cls.forward
        _check_forward_is_the_known_one(original)
        setattr(encoder_cls, _PATCHED_ATTR, original)
        encoder_cls.forward = _forward_with_graphs
    mode = f"graphs for B <= {max_batch}" if on_cuda and max_batch else "eager path kept"
    if on_cuda and not max_batch and not version.startswith(MEASURED_VLLM_RELEASES):
        mode += f" (vLLM {version} not measured with graphs; {MAX_BATCH_ENV}=48 opts in)"
    logger.info(
        "voxtral engine plugin encoder_cuda_graphs registered (cuda: %s, %s)", on_cuda, mode
    )


def _check_forward_is_the_known_one(forward: Any) -> None:
    """Fail the engine start if vLLM's forward is no longer the one copied below."""
    source = inspect.getsource(forward)
    expected = (
        "self.prepare_inputs_for_conv(input_features)",
        "out = self.whisper_encoder([input_embeds])",
        "out[chunk_idx : chunk_idx + n_chunks].flatten(0, 1)",
    )
    missing = [line for line in expected if line not in source]
    if missing:
        raise RuntimeError(
            "vLLM's VoxtralEncoderModel.forward changed (missing "
            f"{missing}); review serve/engine_plugins/encoder_cuda_graphs.py before using it"
        )


def _forward_with_graphs(
    self: Any, input_features: torch.Tensor | list[torch.Tensor]
) -> list[torch.Tensor]:
    """vLLM's `VoxtralEncoderModel.forward`, line for line, but for the encoder call."""
    pause_file = pause_file_from_env()
    if pause_file is not None and pause_file.exists():
        return getattr(type(self), _PATCHED_ATTR)(self, input_features)
    if not isinstance(input_features, list):
        input_features = [input_features]

    # Split long inputs into chunks
    input_embeds, chunks_per_example = self.prepare_inputs_for_conv(input_features)

    # [total_num_chunks, ceil(chunk_size / downsample_factor), hidden_size]
    out = _runner_for(self)(input_embeds)

    # Re-concatenate the chunks
    chunk_idx = 0
    results = []
    for n_chunks in chunks_per_example:
        result = out[chunk_idx : chunk_idx + n_chunks].flatten(0, 1)
        results.append(result)
        chunk_idx += n_chunks

    return results


def _runner_for(encoder: Any) -> BatchGraphRunner:
    """The runner of this encoder module, made on its first call."""
    runner = getattr(encoder, _RUNNER_ATTR, None)
    if runner is None:
        whisper_encoder = encoder.whisper_encoder

        def encode(x: torch.Tensor) -> torch.Tensor:
            return whisper_encoder([x])

        spec = InputSpec(
            n_mels=int(encoder.config.num_mel_bins),
            frames=int(encoder.chunk_size),
            dtype=encoder.dtype,
            max_batch=max_batch_from_env(),
            device_type="cuda",  # never a graph on the CPU engine
        )
        runner = BatchGraphRunner(encode, spec)
        # object.__setattr__: a plain attribute, not registered as a submodule or state.
        object.__setattr__(encoder, _RUNNER_ATTR, runner)
    return runner
