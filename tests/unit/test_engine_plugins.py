"""serve/engine_plugins: the entry point vLLM finds, plugin names, and the graph runner's
dispatch and capture/replay protocol (run here on the CPU with a stand-in for CUDA graphs)."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

import serve.engine_plugins
from serve.engine_plugins import DIST_DIR, PLUGINS_ENV, encoder_cuda_graphs, requested_plugins
from serve.engine_plugins.graph_runner import BatchGraphRunner, InputSpec, Replay, bitwise_equal

N_MELS, FRAMES, MAX_BATCH = 4, 6, 3


def test_vllm_finds_the_plugin_entry_point_in_the_dist_folder() -> None:
    (dist,) = importlib.metadata.distributions(path=[str(DIST_DIR)])
    (entry_point,) = dist.entry_points.select(group="vllm.general_plugins")
    assert entry_point.name == "voxtral"
    assert entry_point.load() is serve.engine_plugins.load


def test_plugin_names_are_parsed_and_unknown_ones_fail() -> None:
    assert requested_plugins(None) == []
    assert requested_plugins(" encoder_cuda_graphs , ") == ["encoder_cuda_graphs"]
    with pytest.raises(ValueError, match="unknown engine plugin"):
        requested_plugins("encoder_cuda_graphs,encoder_graphs")


def test_load_fails_loudly_on_an_unknown_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PLUGINS_ENV, "no_such_plugin")
    with pytest.raises(ValueError, match="no_such_plugin"):
        serve.engine_plugins.load()


def _spec(device_type: str = "cpu") -> InputSpec:
    return InputSpec(
        n_mels=N_MELS, frames=FRAMES, dtype=torch.float32, max_batch=MAX_BATCH,
        device_type=device_type,
    )  # fmt: skip


def _features(batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, N_MELS, FRAMES, generator=generator)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (_features(1), 1),
        (_features(MAX_BATCH), MAX_BATCH),
        (_features(MAX_BATCH + 1), None),  # beyond the memory bound: eager
        (torch.empty(0, N_MELS, FRAMES), None),
        (torch.randn(2, N_MELS + 1, FRAMES), None),
        (torch.randn(2, N_MELS, FRAMES - 1), None),  # not a whole chunk
        (_features(2).to(torch.bfloat16), None),
        (torch.randn(N_MELS, FRAMES), None),
        (torch.randn(2, FRAMES, N_MELS).transpose(1, 2), None),  # not contiguous
    ],
)
def test_which_inputs_may_run_from_a_graph(x: torch.Tensor, expected: int | None) -> None:
    assert _spec().graph_batch(x) == expected


def test_the_engine_spec_never_takes_cpu_tensors() -> None:
    assert _spec(device_type="cuda").graph_batch(_features(2)) is None


def encode(x: torch.Tensor) -> torch.Tensor:
    """An encoder stand-in: [B, n_mels, frames] -> [B, frames // 2, 2 * n_mels], new tensor."""
    return (x[:, :, ::2] * 3 + 1).transpose(1, 2).contiguous().repeat(1, 1, 2)


class StandInGraphs:
    """What a CUDA graph backend does, on the CPU: `capture` returns a replay that recomputes
    `static_output.copy_(encode(static_input))` from whatever the static input holds then,
    as replaying recorded kernels does. `replay_offset` makes replays differ from eager."""

    def __init__(
        self, *, replay_offset: float = 0.0, fail: bool = False, fail_warm_up: bool = False
    ) -> None:
        self.replay_offset = replay_offset
        self.fail = fail
        self.fail_warm_up = fail_warm_up
        self.warm_ups: list[int] = []
        self.captures: list[int] = []
        self.replays = 0

    def __call__(self, device: torch.device) -> StandInGraphs:  # the backend factory
        return self

    def warm_up(self, encode: Callable[[torch.Tensor], torch.Tensor], static_input: torch.Tensor):
        self.warm_ups.append(static_input.shape[0])
        if self.fail_warm_up:
            raise RuntimeError("CUDA out of memory")
        return encode(static_input)

    def capture(
        self,
        encode: Callable[[torch.Tensor], torch.Tensor],
        static_input: torch.Tensor,
        static_output: torch.Tensor,
    ) -> Replay:
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captures.append(static_input.shape[0])

        def replay() -> None:
            self.replays += 1
            static_output.copy_(encode(static_input) + self.replay_offset)

        return replay

    def free_bytes(self) -> int:
        return 0


@pytest.fixture(autouse=True)
def _inference_mode() -> Iterator[None]:
    with torch.inference_mode():  # as vLLM runs the model
        yield


def test_first_call_is_eager_second_captures_later_ones_replay_new_inputs() -> None:
    graphs = StandInGraphs()
    runner = BatchGraphRunner(encode, _spec(), graphs)

    profile_call = runner(_features(2, seed=1))  # vLLM's start-up profile_run
    assert graphs.captures == []
    assert torch.equal(profile_call, encode(_features(2, seed=1)))

    assert torch.equal(runner(_features(2, seed=2)), encode(_features(2, seed=2)))
    assert graphs.warm_ups == [2]
    assert graphs.captures == [2]
    assert runner.captured_batches == [2]

    replayed = runner(_features(2, seed=3))
    assert graphs.replays == 2  # the check at capture, then this call
    assert torch.equal(replayed, encode(_features(2, seed=3)))
    # A result is the caller's own: the next replay does not overwrite it.
    runner(_features(2, seed=4))
    assert torch.equal(replayed, encode(_features(2, seed=3)))
    assert graphs.captures == [2]


def test_each_batch_size_gets_its_own_graph_over_shared_buffers() -> None:
    graphs = StandInGraphs()
    runner = BatchGraphRunner(encode, _spec(), graphs)
    for batch in (1, 3, 1, 3):
        runner(_features(batch))
    assert graphs.captures == [1, 3]
    for seed, batch in enumerate((3, 1, 3, 1, 1), start=10):
        assert torch.equal(runner(_features(batch, seed)), encode(_features(batch, seed)))
    assert runner.captured_batches == [1, 3]


def test_batches_beyond_the_bound_and_grad_mode_stay_eager(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vllm.voxtral_engine_plugins")
    graphs = StandInGraphs()
    runner = BatchGraphRunner(encode, _spec(), graphs)
    for seed in range(3):
        assert torch.equal(
            runner(_features(MAX_BATCH + 1, seed)), encode(_features(MAX_BATCH + 1, seed))
        )
    with torch.inference_mode(False), torch.enable_grad():
        for _ in range(3):
            runner(_features(2))
    assert graphs.captures == []
    above = [r.getMessage() for r in caplog.records if "above the graph bound" in r.getMessage()]
    assert above == [
        f"voxtral encoder B={MAX_BATCH + 1} above the graph bound {MAX_BATCH}: eager path"
    ]


def test_a_graph_that_differs_from_eager_is_discarded_for_good() -> None:
    graphs = StandInGraphs(replay_offset=1e-3)
    runner = BatchGraphRunner(encode, _spec(), graphs)
    for seed in range(4):
        assert torch.equal(runner(_features(2, seed)), encode(_features(2, seed)))
    assert graphs.captures == [2]  # tried once, then never again
    assert runner.captured_batches == []
    assert runner.eager_batches == [2]


@pytest.mark.parametrize("failure", ["fail", "fail_warm_up"])
def test_a_failed_capture_leaves_the_batch_eager(failure: str) -> None:
    graphs = StandInGraphs(**{failure: True})
    runner = BatchGraphRunner(encode, _spec(), graphs)
    for seed in range(4):
        assert torch.equal(runner(_features(1, seed)), encode(_features(1, seed)))
    assert graphs.warm_ups == [1]
    assert runner.eager_batches == [1]


def test_graphs_are_kept_on_equal_bytes_not_equal_values() -> None:
    nan = torch.tensor([float("nan"), 1.0], dtype=torch.bfloat16)
    assert bitwise_equal(nan, nan.clone())  # torch.equal says False
    zeros = torch.tensor([0.0, 1.0], dtype=torch.bfloat16)
    assert not bitwise_equal(zeros, torch.tensor([-0.0, 1.0], dtype=torch.bfloat16))
    assert not bitwise_equal(zeros, zeros.float())


class _EncoderStandIn:
    """Enough of VoxtralEncoderModel for the patched forward to choose a path."""

    def _voxtral_encoder_graphs_original(self, input_features: object) -> tuple[str, object]:
        return ("vLLM's own forward", input_features)

    def prepare_inputs_for_conv(self, input_features: object) -> None:
        raise LookupError("the graph path ran")


def test_the_pause_file_sends_calls_to_vllms_own_forward_while_it_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serve.engine_plugins.encoder_cuda_graphs import PAUSE_FILE_ENV, _forward_with_graphs

    pause_file = tmp_path / "encoder-graphs.paused"
    monkeypatch.setenv(PAUSE_FILE_ENV, str(pause_file))
    features = _features(2)
    with pytest.raises(LookupError, match="graph path"):
        _forward_with_graphs(_EncoderStandIn(), features)  # no file yet: graphs
    pause_file.touch()
    assert _forward_with_graphs(_EncoderStandIn(), features) == ("vLLM's own forward", features)
    pause_file.unlink()
    with pytest.raises(LookupError, match="graph path"):
        _forward_with_graphs(_EncoderStandIn(), features)
    monkeypatch.delenv(PAUSE_FILE_ENV)
    pause_file.touch()  # the variable unset: the file means nothing
    with pytest.raises(LookupError, match="graph path"):
        _forward_with_graphs(_EncoderStandIn(), features)


def test_graphs_default_on_only_for_the_measured_vllm_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RunPod/Compose run vLLM 0.32 on CUDA, never measured with the graphs: eager unless asked."""
    monkeypatch.delenv(encoder_cuda_graphs.MAX_BATCH_ENV, raising=False)
    assert encoder_cuda_graphs.max_batch_from_env("0.26.0") == encoder_cuda_graphs.DEFAULT_MAX_BATCH
    assert encoder_cuda_graphs.max_batch_from_env("0.32.0") == 0
    monkeypatch.setenv(encoder_cuda_graphs.MAX_BATCH_ENV, "16")
    assert encoder_cuda_graphs.max_batch_from_env("0.32.0") == 16
    monkeypatch.setenv(encoder_cuda_graphs.MAX_BATCH_ENV, "0")
    assert encoder_cuda_graphs.max_batch_from_env("0.26.0") == 0
