"""Engine profiles: exact `vllm serve` command lines and environment, and validation."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml
from pydantic import ValidationError

from serve.launcher import render_dry_run
from serve.profiles import (
    ENGINE_ENV_DIR,
    MODEL_CACHE_DIR,
    PROFILES_DIR,
    REPO_ROOT,
    Profile,
    load_profile,
    profile_names,
)

MISTRAL = ["--tokenizer-mode", "mistral", "--config-format", "mistral", "--load-format", "mistral"]
NO_MEDIA_FETCH = ["--allowed-media-domains", "media.invalid"]

EXPECTED_COMMANDS: dict[str, list[str]] = {
    "cpu-tiny-voxtral": [
        str(REPO_ROOT / ".venv-engine/bin/vllm"), "serve", str(MODEL_CACHE_DIR / "tiny-voxtral"),
        "--host", "127.0.0.1", "--port", "8000", "--served-model-name", "tiny-voxtral",
        *MISTRAL, "--max-model-len", "2048", "--max-num-seqs", "16", "--enforce-eager",
        *NO_MEDIA_FETCH,
    ],
    "cpu-tiny-voxtral-realtime": [
        str(REPO_ROOT / ".venv-engine/bin/vllm"), "serve",
        str(MODEL_CACHE_DIR / "tiny-voxtral-realtime"),
        "--host", "127.0.0.1", "--port", "8000", "--served-model-name", "tiny-voxtral-realtime",
        *MISTRAL, "--max-model-len", "2048", "--max-num-seqs", "8", "--enforce-eager",
        *NO_MEDIA_FETCH,
    ],
    "cpu-whisper-tiny-en": [
        str(REPO_ROOT / ".venv-engine/bin/vllm"), "serve", str(MODEL_CACHE_DIR / "whisper-tiny-en"),
        "--host", "127.0.0.1", "--port", "8000", "--served-model-name", "whisper-tiny-en",
        "--dtype", "float32", "--max-model-len", "448", "--max-num-seqs", "16", "--enforce-eager",
        *NO_MEDIA_FETCH,
    ],
    "cpu-whisper-base": [
        str(REPO_ROOT / ".venv-engine/bin/vllm"), "serve", str(MODEL_CACHE_DIR / "whisper-base"),
        "--host", "127.0.0.1", "--port", "8000", "--served-model-name", "whisper-base",
        "--dtype", "float32", "--max-model-len", "448", "--max-num-seqs", "16", "--enforce-eager",
        *NO_MEDIA_FETCH,
    ],
    "voxtral-mini-3b-h100-80gb": [
        "vllm", "serve", "mistralai/Voxtral-Mini-3B-2507",
        "--host", "0.0.0.0", "--port", "8000",
        "--served-model-name", "mistralai/Voxtral-Mini-3B-2507",
        *MISTRAL, "--dtype", "bfloat16", "--max-model-len", "8192", "--max-num-seqs", "256",
        "--max-num-batched-tokens", "16384", "--enable-chunked-prefill",
        "--gpu-memory-utilization", "0.9",
        "--compilation-config", '{"cudagraph_mode":"FULL_AND_PIECEWISE"}',
        *NO_MEDIA_FETCH,
    ],
    "voxtral-mini-3b-h200": [
        "vllm", "serve", "mistralai/Voxtral-Mini-3B-2507",
        "--host", "0.0.0.0", "--port", "8000",
        "--served-model-name", "mistralai/Voxtral-Mini-3B-2507",
        *MISTRAL, "--dtype", "bfloat16", "--max-model-len", "8192", "--max-num-seqs", "256",
        "--max-num-batched-tokens", "16384", "--enable-chunked-prefill",
        "--gpu-memory-utilization", "0.9",
        "--compilation-config", '{"cudagraph_mode":"FULL_AND_PIECEWISE"}',
        *NO_MEDIA_FETCH,
    ],
    "voxtral-mini-3b-24gb": [
        "vllm", "serve", "mistralai/Voxtral-Mini-3B-2507",
        "--host", "0.0.0.0", "--port", "8000",
        "--served-model-name", "mistralai/Voxtral-Mini-3B-2507",
        *MISTRAL, "--dtype", "bfloat16", "--max-model-len", "8192", "--max-num-seqs", "64",
        "--max-num-batched-tokens", "8192", "--enable-chunked-prefill",
        "--gpu-memory-utilization", "0.9",
        "--compilation-config",
        '{"cudagraph_mode":"FULL_AND_PIECEWISE","max_cudagraph_capture_size":64}',
        *NO_MEDIA_FETCH,
    ],
    "voxtral-small-24b-tp2": [
        "vllm", "serve", "mistralai/Voxtral-Small-24B-2507",
        "--host", "0.0.0.0", "--port", "8000",
        "--served-model-name", "mistralai/Voxtral-Small-24B-2507",
        *MISTRAL, "--dtype", "bfloat16", "--max-model-len", "32768", "--max-num-seqs", "128",
        "--max-num-batched-tokens", "16384", "--enable-chunked-prefill",
        "--gpu-memory-utilization", "0.9", "--tensor-parallel-size", "2",
        "--compilation-config", '{"cudagraph_mode":"FULL_AND_PIECEWISE"}',
        *NO_MEDIA_FETCH,
    ],
    "voxtral-mini-4b-realtime": [
        "vllm", "serve", "mistralai/Voxtral-Mini-4B-Realtime-2602",
        "--host", "0.0.0.0", "--port", "8000",
        "--served-model-name", "mistralai/Voxtral-Mini-4B-Realtime-2602",
        *MISTRAL, "--dtype", "bfloat16", "--max-model-len", "16384", "--max-num-seqs", "64",
        "--enable-chunked-prefill", "--gpu-memory-utilization", "0.9",
        "--compilation-config", '{"cudagraph_mode":"PIECEWISE"}',
        *NO_MEDIA_FETCH,
    ],
}  # fmt: skip


def test_every_profile_file_has_an_expected_command() -> None:
    assert profile_names() == sorted(EXPECTED_COMMANDS)


@pytest.mark.parametrize("name", sorted(EXPECTED_COMMANDS))
def test_engine_command_is_exact(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXTRAL_ENGINE_API_KEY", "secret-key")
    assert load_profile(name).engine_command(8000) == EXPECTED_COMMANDS[name]


def test_port_argument_reaches_the_command() -> None:
    cmd = load_profile("cpu-tiny-voxtral").engine_command(43210)
    assert cmd[cmd.index("--port") + 1] == "43210"


def test_cpu_profiles_load_the_engine_env_and_kv_cache_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("VOXTRAL_ENGINE_API_KEY", raising=False)
    assert load_profile("cpu-tiny-voxtral").engine_env() == {
        "PYTHONPATH": str(ENGINE_ENV_DIR),
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }


def test_only_the_english_only_profile_turns_on_the_whisper_prompt_fix() -> None:
    flagged = [
        n for n in profile_names() if "VOXTRAL_ENGINE_ENGLISH_ONLY" in load_profile(n).engine_env()
    ]
    assert flagged == ["cpu-whisper-tiny-en"]


def test_existing_pythonpath_is_kept_after_the_engine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/opt/extra")
    env = load_profile("cpu-tiny-voxtral").engine_env()
    assert env["PYTHONPATH"] == f"{ENGINE_ENV_DIR}:/opt/extra"


def test_plugin_profile_puts_the_entry_point_and_repo_on_the_engine_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/opt/extra")
    monkeypatch.delenv("VOXTRAL_ENGINE_API_KEY", raising=False)
    assert load_profile("voxtral-mini-3b-h200").engine_env() == {
        "PYTHONPATH": ":".join(
            [
                str(ENGINE_ENV_DIR),
                f"{REPO_ROOT}/serve/engine_plugins/dist",
                str(REPO_ROOT),
                "/opt/extra",
            ]
        ),
        "VOXTRAL_ENGINE_PLUGINS": "encoder_cuda_graphs",
    }


def test_only_the_hopper_voxtral_mini_profiles_ask_for_engine_plugins() -> None:
    """Measured there (bench/results/h100/run8-encoder-graphs/); every other profile's engine
    starts without them."""
    with_plugins = [n for n in profile_names() if load_profile(n).engine_plugins]
    assert with_plugins == ["voxtral-mini-3b-h100-80gb", "voxtral-mini-3b-h200"]
    assert "VOXTRAL_ENGINE_PLUGINS" not in load_profile("voxtral-mini-3b-24gb").engine_env()


def test_unknown_engine_plugin_is_rejected() -> None:
    data = _profile_dict("voxtral-mini-3b-h200") | {"engine_plugins": ["encoder_cuda_graph"]}
    with pytest.raises(ValidationError, match="unknown engine plugin"):
        Profile.model_validate(data)


def test_api_key_travels_in_env_never_in_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXTRAL_ENGINE_API_KEY", "secret-key")
    profile = load_profile("voxtral-mini-3b-h100-80gb")
    assert profile.engine_env()["VLLM_API_KEY"] == "secret-key"
    assert "secret-key" not in " ".join(profile.engine_command(8000))


def test_unset_api_key_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXTRAL_ENGINE_API_KEY", raising=False)
    assert "VLLM_API_KEY" not in load_profile("voxtral-mini-3b-h100-80gb").engine_env()


def test_dry_run_shows_the_key_variable_not_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXTRAL_ENGINE_API_KEY", "secret-key")
    line = render_dry_run(load_profile("voxtral-mini-3b-24gb"), 8000)
    assert "secret-key" not in line
    assert 'VLLM_API_KEY="$VOXTRAL_ENGINE_API_KEY"' in line
    # The rest is a shell line whose words are the exact command.
    words = shlex.split(line)
    assert words[words.index("vllm") :] == EXPECTED_COMMANDS["voxtral-mini-3b-24gb"]


def _profile_dict(name: str) -> dict[str, object]:
    return yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())


def test_unknown_key_is_rejected() -> None:
    data = _profile_dict("voxtral-mini-3b-24gb") | {"gpu_memory_utilisation": 0.5}
    with pytest.raises(ValidationError, match="gpu_memory_utilisation"):
        Profile.model_validate(data)


def test_model_and_generated_model_are_exclusive() -> None:
    data = _profile_dict("cpu-tiny-voxtral") | {"model": "mistralai/Voxtral-Mini-3B-2507"}
    with pytest.raises(ValidationError, match="exactly one"):
        Profile.model_validate(data)


def test_cpu_profile_without_enforce_eager_is_rejected() -> None:
    data = _profile_dict("cpu-tiny-voxtral") | {"enforce_eager": False}
    with pytest.raises(ValidationError, match="enforce_eager"):
        Profile.model_validate(data)


def test_gpu_settings_on_a_cpu_profile_are_rejected() -> None:
    data = _profile_dict("cpu-tiny-voxtral") | {"gpu_memory_utilization": 0.9}
    with pytest.raises(ValidationError, match="device cuda"):
        Profile.model_validate(data)


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(FileNotFoundError, match="cpu-tiny-voxtral"):
        load_profile("no-such-profile")


def test_no_profile_lets_the_engine_fetch_media() -> None:
    # vLLM reads an empty --allowed-media-domains as "any host".
    for name in profile_names():
        assert load_profile(name).allowed_media_domains == ["media.invalid"]


def test_compilation_config_is_valid_json() -> None:
    cmd = load_profile("voxtral-small-24b-tp2").engine_command(8000)
    config = json.loads(cmd[cmd.index("--compilation-config") + 1])
    assert config == {"cudagraph_mode": "FULL_AND_PIECEWISE"}
