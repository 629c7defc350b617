"""The random-weight Voxtral Realtime generator (serve/fixtures/voxtral_realtime.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from safetensors import safe_open

from serve.fixtures import REALTIME_SHAPES, generate_voxtral_realtime
from serve.fixtures.voxtral_realtime import (
    PREFIX,
    build_realtime_params,
    realtime_weight_shapes,
)
from serve.models import ensure_generated_model


@pytest.fixture(scope="module")
def tiny_realtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_voxtral_realtime(
        tmp_path_factory.mktemp("rt") / "a", shape=REALTIME_SHAPES["tiny"], seed=0
    )


def test_same_seed_gives_identical_bytes(tiny_realtime: Path, tmp_path: Path) -> None:
    again = generate_voxtral_realtime(tmp_path / "b", shape=REALTIME_SHAPES["tiny"], seed=0)
    for name in ("params.json", "tekken.json", "consolidated.safetensors"):
        assert (again / name).read_bytes() == (tiny_realtime / name).read_bytes(), name


def test_weights_have_the_released_names_and_tied_output(tiny_realtime: Path) -> None:
    with safe_open(str(tiny_realtime / "consolidated.safetensors"), "pt") as f:
        found = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
    assert found == realtime_weight_shapes(REALTIME_SHAPES["tiny"])
    assert found[f"{PREFIX}whisper_encoder.conv_layers.0.conv.weight"] == (128, 128, 3)
    assert found["layers.0.ada_rms_norm_t_cond.0.weight"] == (32, 128)
    assert f"{PREFIX}whisper_encoder.transformer.layers.0.attention.wk.bias" not in found
    assert f"{PREFIX}whisper_encoder.transformer.layers.0.feed_forward.w2.bias" in found
    assert "output.weight" not in found  # tied to tok_embeddings
    assert sum(p.stat().st_size for p in tiny_realtime.iterdir()) < 5 * 1024 * 1024


def test_params_select_vllms_realtime_architecture(tiny_realtime: Path) -> None:
    params = json.loads((tiny_realtime / "params.json").read_text())
    encoder = params["multimodal"]["whisper_model_args"]["encoder_args"]
    # vLLM picks VoxtralRealtimeGeneration on `causal`; its causal encoder asserts RoPE and
    # needs a sliding window.
    assert (encoder["causal"], encoder["pos_embed"], encoder["sliding_window"]) == (
        True,
        "rope",
        750,
    )
    assert params["ada_rms_norm_t_cond"] is True
    assert params["tied_embeddings"] is True


def test_full_size_shape_matches_voxtral_mini_4b_realtime() -> None:
    shapes = realtime_weight_shapes(REALTIME_SHAPES["voxtral-mini-4b-realtime"])
    encoder = {n: s for n, s in shapes.items() if "whisper_encoder" in n}
    decoder = {n: s for n, s in shapes.items() if n.startswith("layers.")}
    # Tensor counts of the released consolidated.safetensors: 421 encoder, 286 decoder.
    assert (len(encoder), len(decoder)) == (421, 286)
    assert sum(int(np.prod(s)) for s in encoder.values()) == 970_395_392
    assert sum(int(np.prod(s)) for s in shapes.values()) == 4_429_679_360
    params = build_realtime_params(REALTIME_SHAPES["voxtral-mini-4b-realtime"])
    assert (params["dim"], params["n_layers"], params["hidden_dim"]) == (3072, 26, 9216)
    assert params["vocab_size"] == 131_072


def test_tekken_is_a_streaming_tokenizer(tiny_realtime: Path) -> None:
    tokenizer = MistralTokenizer.from_file(str(tiny_realtime / "tekken.json"))
    instruct = tokenizer.instruct_tokenizer
    audio = instruct.audio_encoder
    assert audio is not None
    assert audio.audio_config.is_streaming
    assert instruct.tokenizer.get_special_token("[STREAMING_PAD]") == 32
    # What vLLM sends before the first audio frame: <s>, 32 left-pad and 6 delay tokens.
    assert instruct.start() + audio.encode_streaming_tokens() == [1] + [32] * 38


def test_profile_model_is_generated_into_the_cache(tmp_path: Path) -> None:
    folder = ensure_generated_model("tiny-voxtral-realtime", cache_dir=tmp_path)
    assert json.loads((folder / "params.json").read_text())["causal"] is True
