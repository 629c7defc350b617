"""Model generators in serve.fixtures: the tiny Voxtral and the Whisper tiny.en conversion."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from mistral_common.tokens.tokenizers.tekken import Tekkenizer
from safetensors import safe_open
from safetensors.torch import load_file

from serve import models
from serve.fixtures import SHAPES, convert_whisper_tiny_en, generate_voxtral
from serve.fixtures.tekken import invisible_token_ids
from serve.fixtures.voxtral import BIAS_CHANNEL, BIAS_INPUT, build_params, weight_shapes
from serve.fixtures.whisper_ct2 import read_ct2_model
from serve.models import ensure_generated_model
from voxtral_gateway.whisper_ct2 import package_model_dir


@pytest.fixture(scope="module")
def tiny_voxtral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_voxtral(tmp_path_factory.mktemp("tv") / "a", shape=SHAPES["tiny"], seed=0)


def test_same_seed_gives_identical_bytes(tiny_voxtral: Path, tmp_path: Path) -> None:
    again = generate_voxtral(tmp_path / "b", shape=SHAPES["tiny"], seed=0)
    for name in ("params.json", "tekken.json", "consolidated.safetensors"):
        assert (again / name).read_bytes() == (tiny_voxtral / name).read_bytes(), name


def test_another_seed_gives_other_weights(tiny_voxtral: Path, tmp_path: Path) -> None:
    other = generate_voxtral(tmp_path / "c", shape=SHAPES["tiny"], seed=1)
    weights = "consolidated.safetensors"
    assert (other / weights).read_bytes() != (tiny_voxtral / weights).read_bytes()


def test_tiny_voxtral_is_small(tiny_voxtral: Path) -> None:
    total = sum(p.stat().st_size for p in tiny_voxtral.iterdir())
    assert total < 20 * 1024 * 1024


def test_weights_have_the_loader_names_and_shapes(tiny_voxtral: Path) -> None:
    with safe_open(str(tiny_voxtral / "consolidated.safetensors"), "pt") as f:
        found = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
    assert found == weight_shapes(SHAPES["tiny"])
    assert found["mm_whisper_embeddings.whisper_encoder.conv_layers.0.conv.weight"] == (128, 128, 3)
    assert found["mm_whisper_embeddings.audio_language_projection.0.weight"] == (128, 512)
    assert found["output.weight"] == (2100, 128)


def test_params_have_voxtral_mini_key_structure(tiny_voxtral: Path) -> None:
    params = json.loads((tiny_voxtral / "params.json").read_text())
    whisper = params["multimodal"]["whisper_model_args"]
    assert whisper["downsample_args"] == {"downsample_factor": 4}
    assert whisper["encoder_args"]["audio_encoding_args"] == {
        "sampling_rate": 16000,
        "num_mel_bins": 128,
        "hop_length": 160,
        "window_size": 400,
    }
    assert params["vocab_size"] == 2100


def test_full_size_shape_matches_voxtral_mini_3b() -> None:
    params = build_params(SHAPES["voxtral-mini-3b"])
    encoder = params["multimodal"]["whisper_model_args"]["encoder_args"]
    assert (params["dim"], params["n_layers"], params["hidden_dim"]) == (3072, 30, 8192)
    assert (params["n_heads"], params["n_kv_heads"], params["head_dim"]) == (32, 8, 128)
    assert (params["vocab_size"], params["rope_theta"]) == (131072, 1e8)
    assert (encoder["dim"], encoder["n_layers"], encoder["n_heads"]) == (1280, 32, 20)
    assert (encoder["head_dim"], encoder["hidden_dim"]) == (64, 5120)
    total = sum(int(np.prod(s)) for s in weight_shapes(SHAPES["voxtral-mini-3b"]).values())
    assert total == 4_674_351_104  # what the real checkpoint holds


def test_tekken_is_v7_with_voxtral_audio_tokens(tiny_voxtral: Path) -> None:
    tokenizer = Tekkenizer.from_file(tiny_voxtral / "tekken.json")
    assert tokenizer.version.value == "v7"
    assert tokenizer.n_words == 2100
    ids = {t: tokenizer.get_special_token(t) for t in ("[AUDIO]", "[BEGIN_AUDIO]", "[TRANSCRIBE]")}
    assert ids == {"[AUDIO]": 22, "[BEGIN_AUDIO]": 23, "[TRANSCRIBE]": 24}
    assert tokenizer.audio is not None
    assert tokenizer.audio.frame_rate == 12.5
    assert tokenizer.audio.chunk_length_s == 30.0
    # Ordinary text still round-trips through the cut vocab.
    assert tokenizer.decode(tokenizer.encode("hello world", bos=False, eos=False)) == "hello world"


def test_invisible_tokens_are_specials_and_pieces_without_text(tiny_voxtral: Path) -> None:
    tokenizer = Tekkenizer.from_file(tiny_voxtral / "tekken.json")
    invisible = set(invisible_token_ids(tiny_voxtral / "tekken.json"))
    assert set(range(100)) <= invisible
    lone_byte = tokenizer.num_special_tokens + 0xC3  # byte ranks come first
    assert tokenizer.id_to_byte_piece(lone_byte) == b"\xc3"
    assert {lone_byte, *tokenizer.encode("\n", bos=False, eos=False)} <= invisible
    assert not set(tokenizer.encode("hello world", bos=False, eos=False)) & invisible


def test_head_never_prefers_an_invisible_token(tiny_voxtral: Path) -> None:
    tensors = load_file(tiny_voxtral / "consolidated.safetensors")
    weights = {name: tensor.float() for name, tensor in tensors.items()}
    invisible = invisible_token_ids(tiny_voxtral / "tekken.json")
    visible = sorted(set(range(SHAPES["tiny"].vocab_size)) - set(invisible))
    # Only the token embedding writes the bias channel, so at a text position the final norm
    # sees BIAS_INPUT there beside whatever the layers added elsewhere.
    writers = [f"layers.{n}.{w}" for n in range(2) for w in ("attention.wo", "feed_forward.w2")]
    for name in [*writers, "mm_whisper_embeddings.audio_language_projection.2"]:
        assert not weights[f"{name}.weight"][BIAS_CHANNEL].any(), name
    embedding = weights["mm_whisper_embeddings.tok_embeddings.weight"]
    assert (embedding[:, BIAS_CHANNEL] == BIAS_INPUT).all()
    # Residuals from 0.1 to 100 in norm (the random layers give about 1).
    gen = torch.Generator().manual_seed(0)
    residual = torch.randn(2048, 128, generator=gen) / 11.3
    residual *= torch.logspace(-1, 2, 2048)[:, None]
    residual[:, BIAS_CHANNEL] = BIAS_INPUT
    hidden = residual * torch.rsqrt(residual.pow(2).mean(-1, keepdim=True) + 1e-5)
    logits = hidden @ weights["output.weight"].T
    gap = logits[:, visible].max(-1).values - logits[:, invisible].max(-1).values
    assert gap.min() > 20  # no argmax, and under e^-20 of the mass at temperature 1


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def test_ct2_reader_parses_variables_and_aliases(tmp_path: Path) -> None:
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    blob = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<I", 3)
    blob += struct.pack("<I", 1) + _ct2_string("decoder/embeddings/weight")
    blob += struct.pack("<B", 2) + struct.pack("<II", 2, 3) + struct.pack("<B", 4)
    blob += struct.pack("<I", weight.nbytes) + weight.tobytes()
    blob += struct.pack("<I", 1) + _ct2_string("decoder/projection/weight")
    blob += _ct2_string("decoder/embeddings/weight")
    (tmp_path / "model.bin").write_bytes(blob)
    spec, variables = read_ct2_model(tmp_path / "model.bin")
    assert spec == "WhisperSpec"
    np.testing.assert_array_equal(variables["decoder/embeddings/weight"], weight)
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]


def test_ct2_reader_rejects_other_binary_versions(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 5))
    with pytest.raises(ValueError, match="version 5"):
        read_ct2_model(tmp_path / "model.bin")


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_whisper_tiny_en(tmp_path_factory.mktemp("whisper"))


def test_whisper_conversion_splits_fused_attention(whisper_dir: Path) -> None:
    _, ct2 = read_ct2_model(package_model_dir("tiny.en") / "model.bin")
    fused_qkv = ct2["decoder/layer_2/self_attention/linear_0/weight"].astype(np.float32)
    fused_kv = ct2["decoder/layer_2/attention/linear_1/weight"].astype(np.float32)
    with safe_open(str(whisper_dir / "model.safetensors"), "np") as f:
        layer = "model.decoder.layers.2"
        np.testing.assert_array_equal(
            f.get_tensor(f"{layer}.self_attn.k_proj.weight"), fused_qkv[384:768]
        )
        np.testing.assert_array_equal(
            f.get_tensor(f"{layer}.self_attn.v_proj.weight"), fused_qkv[768:]
        )
        np.testing.assert_array_equal(
            f.get_tensor(f"{layer}.encoder_attn.v_proj.weight"), fused_kv[384:]
        )
        names = set(f.keys())  # noqa: SIM118
    assert "model.decoder.layers.2.self_attn.k_proj.bias" not in names  # Whisper has none
    assert len(names) == 167


def test_whisper_config_describes_tiny_en(whisper_dir: Path) -> None:
    config = json.loads((whisper_dir / "config.json").read_text())
    assert config["architectures"] == ["WhisperForConditionalGeneration"]
    assert (config["d_model"], config["encoder_layers"], config["decoder_layers"]) == (384, 4, 4)
    assert (config["vocab_size"], config["num_mel_bins"]) == (51864, 80)
    assert config["max_target_positions"] == 448


def test_whisper_tokenizer_has_timestamp_tokens(whisper_dir: Path) -> None:
    added = json.loads((whisper_dir / "tokenizer.json").read_text())["added_tokens"]
    by_content = {t["content"]: t["id"] for t in added}
    assert by_content["<|notimestamps|>"] == 50362
    assert by_content["<|0.00|>"] == 50363
    assert by_content["<|30.00|>"] == 51863


def test_generated_model_is_reused_when_its_stamp_matches(tmp_path: Path) -> None:
    first = ensure_generated_model("tiny-voxtral", cache_dir=tmp_path)
    weights = first / "consolidated.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert ensure_generated_model("tiny-voxtral", cache_dir=tmp_path) == first
    assert weights.stat().st_mtime_ns == mtime


def test_stale_generated_model_is_rebuilt(tmp_path: Path) -> None:
    first = ensure_generated_model("tiny-voxtral", cache_dir=tmp_path)
    (first / ".generated").write_text("0\n")
    (first / "params.json").write_text("{}")
    ensure_generated_model("tiny-voxtral", cache_dir=tmp_path)
    assert json.loads((first / "params.json").read_text())["dim"] == 128


def test_editing_a_generator_rebuilds_its_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "generator.py"
    source.write_text("v1\n")
    monkeypatch.setitem(models._GENERATOR_SOURCES, "tiny-voxtral", (source,))
    first = ensure_generated_model("tiny-voxtral", cache_dir=tmp_path / "cache")
    (first / "params.json").write_text("{}")
    assert ensure_generated_model("tiny-voxtral", cache_dir=tmp_path / "cache") == first
    assert (first / "params.json").read_text() == "{}"
    source.write_text("v2\n")
    ensure_generated_model("tiny-voxtral", cache_dir=tmp_path / "cache")
    assert json.loads((first / "params.json").read_text())["dim"] == 128
