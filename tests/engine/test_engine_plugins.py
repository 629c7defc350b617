"""serve/engine_plugins inside a real vLLM CPU engine: a profile that asks for a plugin gets it
loaded through vLLM's entry point in the engine processes, and the engine still transcribes.

On the CPU the encoder_cuda_graphs plugin must keep the eager path: its patched encoder forward
runs, finds no CUDA tensor, and calls vLLM's encoder as before (the GPU side is checked on the
device: bench/gpu/encoder_graph_check.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from serve.launcher import start_engine
from serve.profiles import load_profile
from tests.fixtures.audio import AudioClip
from tests.fixtures.engines import ENGINE_READY_TIMEOUT_S, RunningEngine, free_loopback_port

pytestmark = pytest.mark.engine

REGISTERED = "voxtral engine plugin encoder_cuda_graphs registered (cuda: False, eager path kept)"
EAGER_ON_CPU = "voxtral encoder input on cpu: eager path (CUDA graphs only for cuda)"


@pytest.fixture(scope="module")
def plugin_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """cpu-tiny-voxtral with `engine_plugins: [encoder_cuda_graphs]`: the one extra engine
    start this costs is the point (the shared engines never load plugins)."""
    profile = load_profile("cpu-tiny-voxtral").model_copy(
        update={"engine_plugins": ["encoder_cuda_graphs"]}
    )
    port = free_loopback_port()
    log_path = tmp_path_factory.mktemp("engine-logs") / "cpu-tiny-voxtral-plugins.log"
    process = start_engine(profile, port, log_path=log_path)
    try:
        process.wait_healthy(f"http://127.0.0.1:{port}/health", timeout_s=ENGINE_READY_TIMEOUT_S)
        yield RunningEngine(
            f"http://127.0.0.1:{port}", profile.served_model_name, profile.name, process=process
        )
    finally:
        process.stop()


def _lines_of(engine: RunningEngine, text: str) -> list[str]:
    assert engine.process is not None and engine.process.log_path is not None
    log = engine.process.log_path.read_text(encoding="utf-8", errors="replace")
    return [line for line in log.splitlines() if text in line]


def _process_names(lines: list[str]) -> set[str]:
    """vLLM prefixes each process's output with `(Name pid=N)`."""
    return {match.group(1) for line in lines if (match := re.match(r"\((\w+) pid=\d+\)", line))}


def test_plugin_loads_in_the_engine_and_the_engine_still_transcribes(
    plugin_engine: RunningEngine, speech_5s: AudioClip
) -> None:
    response = httpx.post(
        f"{plugin_engine.openai_base_url}/audio/transcriptions",
        files={"file": (speech_5s.path.name, speech_5s.read_bytes(), "audio/wav")},
        data={
            "model": plugin_engine.model,
            "max_completion_tokens": "8",
            "temperature": "0",
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"]

    # vLLM loads general plugins in every process; the engine core is the one that matters.
    assert "EngineCore" in _process_names(_lines_of(plugin_engine, REGISTERED))
    # The patched forward ran where the model runs (not the API server) and stayed eager.
    eager_processes = _process_names(_lines_of(plugin_engine, EAGER_ON_CPU))
    assert eager_processes and "APIServer" not in eager_processes
    assert not _lines_of(plugin_engine, "encoder CUDA graph captured")
