"""The random-weight Voxtral Realtime generator (serve/fixtures/voxtral_realtime.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from safetensors import safe_open
from safetensors.torch import load_file

from serve.fixtures import REALTIME_SHAPES, generate_voxtral_realtime
from serve.fixtures.tekken import invisible_token_ids
from serve.fixtures.voxtral import BIAS_CHANNEL, TIED_INVISIBLE_INPUT, TIED_VISIBLE_INPUT
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


def test_tied_head_never_prefers_an_invisible_token(tiny_realtime: Path) -> None:
    tensors = load_file(tiny_realtime / "consolidated.safetensors")
    weights = {name: tensor.float() for name, tensor in tensors.items()}
    invisible = invisible_token_ids(tiny_realtime / "tekken.json")
    assert 32 in invisible  # [STREAMING_PAD], the prompt's filler
    visible = sorted(set(range(REALTIME_SHAPES["tiny"].vocab_size)) - set(invisible))
    writers = [f"layers.{n}.{w}" for n in range(2) for w in ("attention.wo", "feed_forward.w2")]
    for name in [*writers, f"{PREFIX}audio_language_projection.2"]:
        assert not weights[f"{name}.weight"][BIAS_CHANNEL].any(), name
    embedding = weights[f"{PREFIX}tok_embeddings.weight"]
    assert (embedding[visible, BIAS_CHANNEL] == TIED_VISIBLE_INPUT).all()
    assert (embedding[invisible, BIAS_CHANNEL] == TIED_INVISIBLE_INPUT).all()
    assert not embedding[invisible, BIAS_CHANNEL + 1 :].any()
    # After a pad token (the smaller bias), residuals from 0.1 to 10 in norm (about 1.5 here),
    # with logits rounded to bf16 as vLLM computes them.
    gen = torch.Generator().manual_seed(0)
    residual = torch.randn(2048, 128, generator=gen) / 11.3
    residual *= torch.logspace(-1, 1, 2048)[:, None]
    residual[:, BIAS_CHANNEL] = TIED_INVISIBLE_INPUT
    hidden = residual * torch.rsqrt(residual.pow(2).mean(-1, keepdim=True) + 1e-5)
    logits = (hidden.bfloat16() @ embedding.bfloat16().T).float()
    gap = logits[:, visible].max(-1).values - logits[:, invisible].max(-1).values
    assert gap.min() > 0.5
    # The bias stays small enough for bf16 to keep the random parts apart: the first visible
    # id (an all-way tie's winner) wins about as rarely as any other.
    assert (logits.argmax(-1) == visible[0]).float().mean() < 0.01


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
