"""Engine profiles: `configs/profiles/<name>.yaml` -> the exact `vllm serve` command line.

A profile names the model, where it runs, and the vLLM flags that are right for it. Unknown
keys are rejected so a typo in a flag name fails loudly instead of silently doing nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve.engine_plugins import DIST_DIR as ENGINE_PLUGINS_DIST_DIR
from serve.engine_plugins import PLUGINS_ENV as ENGINE_PLUGINS_ENV
from serve.engine_plugins import requested_plugins

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO_ROOT / "configs" / "profiles"
ENGINE_ENV_DIR = REPO_ROOT / "serve" / "engine_env"
MODEL_CACHE_DIR = REPO_ROOT / ".cache" / "models"
ENGLISH_ONLY_ENV = "VOXTRAL_ENGINE_ENGLISH_ONLY"  # read by serve/engine_env/sitecustomize.py

GeneratedModel = Literal["tiny-voxtral", "tiny-voxtral-realtime", "whisper-tiny-en", "whisper-base"]


class Profile(BaseModel):
    """One engine deployment: model, device and vLLM flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Profile name; equals the YAML file's stem."""
    description: str
    """One line for `python -m serve list` and the README table."""
    model: str | None = None
    """Hugging Face repo id or local folder served by vLLM."""
    generated_model: GeneratedModel | None = None
    """Instead of `model`: a model built by `serve.fixtures` into `.cache/models/<name>`."""
    served_model_name: str
    """Name clients (and the gateway) send as `model`."""
    device: Literal["cpu", "cuda"]
    vllm_bin: str = "vllm"
    """vLLM executable; a relative path is taken from the repository root."""
    host: str = "127.0.0.1"
    """Interface the engine listens on."""
    mistral_format: bool = False
    """Pass `--tokenizer-mode/--config-format/--load-format mistral` (Voxtral checkpoints)."""
    dtype: str | None = None
    max_model_len: int = Field(gt=0)
    """Context per request (tokens); Voxtral spends 12.5 audio tokens/s, padded to 30 s."""
    max_num_seqs: int | None = Field(None, gt=0)
    """Requests decoded together."""
    max_num_batched_tokens: int | None = Field(None, gt=0)
    """Tokens per scheduler step (the chunked-prefill chunk)."""
    enable_chunked_prefill: bool | None = None
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    """Share of GPU memory vLLM may take (CUDA only)."""
    tensor_parallel_size: int = Field(1, ge=1)
    enforce_eager: bool = False
    """No CUDA graphs / torch.compile; required on the CPU engine."""
    compilation_config: dict[str, Any] | None = None
    """Passed as JSON to `--compilation-config`."""
    allowed_media_domains: list[str] = Field(default_factory=list)
    """Hosts the engine may fetch media URLs from; vLLM reads an empty list as *any* host."""
    api_key_env: str | None = "VOXTRAL_ENGINE_API_KEY"
    """Env var whose value becomes the engine's `--api-key` (passed as VLLM_API_KEY, not argv)."""
    english_only: bool = False
    """English-only Whisper (`*.en`): enables the prompt fix in engine_env/sitecustomize.py."""
    cpu_kv_cache_space_gib: int | None = Field(None, gt=0)
    """KV cache size on the CPU engine (GiB), as VLLM_CPU_KVCACHE_SPACE."""
    extra_args: list[str] = Field(default_factory=list)
    """Further `vllm serve` flags, appended verbatim."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for the engine process."""
    engine_plugins: list[str] = Field(default_factory=list)
    """vLLM plugins from serve/engine_plugins/ for the engine, e.g. `encoder_cuda_graphs`."""
    gateway_env: dict[str, str] = Field(default_factory=dict)
    """Gateway settings (`VOXTRAL_*` variables) this engine calls for; `serve up` passes them."""
    realtime: bool = False
    """The engine answers vLLM's `/v1/realtime` WebSocket (Voxtral Realtime): `serve up` bridges
    the gateway's realtime sessions to it (VOXTRAL_REALTIME__PASSTHROUGH_URL)."""

    @field_validator("engine_plugins")
    @classmethod
    def _known_plugins(cls, names: list[str]) -> list[str]:
        return requested_plugins(",".join(names))

    @model_validator(mode="after")
    def _check_consistency(self) -> Profile:
        if (self.model is None) == (self.generated_model is None):
            raise ValueError("set exactly one of `model` and `generated_model`")
        if self.device == "cpu":
            if self.gpu_memory_utilization is not None or self.tensor_parallel_size != 1:
                raise ValueError("gpu_memory_utilization/tensor_parallel_size need device cuda")
            if not self.enforce_eager:
                raise ValueError("the CPU engine needs enforce_eager: true")
        elif self.cpu_kv_cache_space_gib is not None:
            raise ValueError("cpu_kv_cache_space_gib needs device cpu")
        return self

    def model_path(self) -> str:
        """What `vllm serve` gets as its model: the repo id, folder, or generated-model folder."""
        if self.generated_model is not None:
            return str(MODEL_CACHE_DIR / self.generated_model)
        assert self.model is not None  # guaranteed by _check_consistency
        return self.model

    def vllm_executable(self) -> str:
        if "/" in self.vllm_bin and not Path(self.vllm_bin).is_absolute():
            return str(REPO_ROOT / self.vllm_bin)
        return self.vllm_bin

    def engine_command(self, port: int) -> list[str]:
        """The exact `vllm serve` argv for this profile listening on `port`."""
        cmd = [self.vllm_executable(), "serve", self.model_path()]
        cmd += ["--host", self.host, "--port", str(port)]
        cmd += ["--served-model-name", self.served_model_name]
        if self.mistral_format:
            cmd += ["--tokenizer-mode", "mistral", "--config-format", "mistral"]
            cmd += ["--load-format", "mistral"]
        if self.dtype is not None:
            cmd += ["--dtype", self.dtype]
        cmd += ["--max-model-len", str(self.max_model_len)]
        if self.max_num_seqs is not None:
            cmd += ["--max-num-seqs", str(self.max_num_seqs)]
        if self.max_num_batched_tokens is not None:
            cmd += ["--max-num-batched-tokens", str(self.max_num_batched_tokens)]
        if self.enable_chunked_prefill is not None:
            cmd.append(
                "--enable-chunked-prefill"
                if self.enable_chunked_prefill
                else "--no-enable-chunked-prefill"
            )
        if self.gpu_memory_utilization is not None:
            cmd += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        if self.tensor_parallel_size != 1:
            cmd += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.enforce_eager:
            cmd.append("--enforce-eager")
        if self.compilation_config is not None:
            cmd += [
                "--compilation-config",
                json.dumps(self.compilation_config, separators=(",", ":"), sort_keys=True),
            ]
        if self.allowed_media_domains:
            cmd += ["--allowed-media-domains", *self.allowed_media_domains]
        return cmd + list(self.extra_args)

    def engine_env(self) -> dict[str, str]:
        """Environment variables to add for the engine process (on top of os.environ).

        The API key travels as VLLM_API_KEY (vLLM's default for `--api-key`), so it never
        shows in `ps` or in a dry-run. Empty when the key variable is unset.
        """
        pythonpath = os.pathsep.join([str(ENGINE_ENV_DIR), *self.plugin_pythonpath()])
        env = {"PYTHONPATH": _prepend_path(pythonpath, os.environ.get("PYTHONPATH"))}
        if self.engine_plugins:
            env[ENGINE_PLUGINS_ENV] = ",".join(self.engine_plugins)
        if self.cpu_kv_cache_space_gib is not None:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.cpu_kv_cache_space_gib)
        if self.english_only:
            env[ENGLISH_ONLY_ENV] = "1"
        api_key = self.api_key()
        if api_key:
            env["VLLM_API_KEY"] = api_key
        return env | dict(self.env)

    def plugin_pythonpath(self) -> list[str]:
        """PYTHONPATH entries the engine needs for `engine_plugins`: the folder declaring vLLM's
        entry point and the repository root (for `serve.engine_plugins`); none without plugins."""
        return [str(ENGINE_PLUGINS_DIST_DIR), str(REPO_ROOT)] if self.engine_plugins else []

    def api_key(self) -> str | None:
        """The engine API key from `api_key_env`, or None when unset or empty."""
        if self.api_key_env is None:
            return None
        return os.environ.get(self.api_key_env) or None


def _prepend_path(entry: str, existing: str | None) -> str:
    return entry if not existing else f"{entry}{os.pathsep}{existing}"


def profile_names() -> list[str]:
    """Names of all profiles in configs/profiles/, sorted."""
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> Profile:
    """Load and validate `configs/profiles/<name>.yaml`.

    Raises FileNotFoundError (listing known names) for an unknown profile and
    pydantic.ValidationError for a malformed one.
    """
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no profile {name!r}; known: {', '.join(profile_names())}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    profile = Profile.model_validate(data)
    if profile.name != name:
        raise ValueError(f"{path}: name {profile.name!r} differs from the file name")
    return profile
