"""vLLM engine plugins of this project, loaded through vLLM's own plugin mechanism.

vLLM calls every entry point of the group `vllm.general_plugins` in each of its processes (API
server, engine core, workers) before it builds a model (`vllm/plugins/__init__.py`;
`VLLM_PLUGINS` filters them by entry-point name). Nothing is pip-installed: the entry point
`voxtral = serve.engine_plugins:load` lives in `dist/voxtral_engine_plugins-0.1.dist-info/`,
which `importlib.metadata` finds on `sys.path`. A profile that lists `engine_plugins` puts that
folder and the repository root on the engine's PYTHONPATH and names the plugins in
`VOXTRAL_ENGINE_PLUGINS` (serve/profiles.py); an engine started any other way loads nothing.

This module imports only the standard library: serve/profiles.py reads `KNOWN_PLUGINS` to
reject a misspelt name when a profile is loaded, long before an engine starts.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

PLUGINS_ENV = "VOXTRAL_ENGINE_PLUGINS"
"""Comma-separated plugin names to register in each vLLM process; unset or empty: none."""

DIST_DIR = Path(__file__).resolve().parent / "dist"
"""Holds the dist-info folder that declares the entry point; goes on the engine's PYTHONPATH."""

KNOWN_PLUGINS = {
    "encoder_cuda_graphs": "serve.engine_plugins.encoder_cuda_graphs",
}
"""Plugin name -> module with a `register()` function."""


def requested_plugins(value: str | None) -> list[str]:
    """Plugin names in a `VOXTRAL_ENGINE_PLUGINS` value; an unknown name raises ValueError."""
    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in KNOWN_PLUGINS]
    if unknown:
        raise ValueError(
            f"{PLUGINS_ENV}: unknown engine plugin(s) {unknown}; known: {sorted(KNOWN_PLUGINS)}"
        )
    return names


def load() -> None:
    """vLLM's entry point: register each plugin named in `VOXTRAL_ENGINE_PLUGINS`.

    vLLM logs and skips an entry point that fails to *import*, but an exception raised here
    stops the process, so a misspelt name or a failed patch fails the engine start loudly.
    """
    for name in requested_plugins(os.environ.get(PLUGINS_ENV)):
        importlib.import_module(KNOWN_PLUGINS[name]).register()
