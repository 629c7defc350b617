"""The READMEs' `run` blocks, run as a reader would, against the real CPU Whisper engine.

The marking convention and the address rewriting are in tests/readme_blocks.py. Each README's
blocks share one scratch folder and run in order (a block may use a file an earlier block made,
e.g. `speech.wav`); a test runs the earlier blocks first if they have not run yet, so one block
can be run alone with `-k`. Output is compared with the ```output block that follows: exactly,
by word error rate (`wer=`) or by shape (`shape`: JSON keys, or SRT cue count).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from serve.profiles import load_profile
from tests.fixtures.gateway import RunningGateway, start_gateway
from tests.readme_blocks import (
    READMES,
    ReadmeRunner,
    RunnableBlock,
    assert_output_matches,
    read_blocks,
    runnable_blocks,
)
from voxtral_gateway.settings import Settings

pytestmark = pytest.mark.engine

_BLOCKS = {readme: runnable_blocks(read_blocks(readme)) for readme in READMES}


@pytest.fixture(scope="module")
def readme_gateway(whisper_engine: Any) -> Iterator[RunningGateway]:
    """The gateway as README.md's default profile runs it (its `gateway_env`), in front of the
    session's Whisper engine. One setting differs: the realtime idle timer counts client events
    only, so on a loaded CI machine a session waiting for its final transcript could be closed
    as idle (seen at load average 23: 33 s for one utterance)."""
    profile_env = load_profile("cpu-whisper-tiny-en").gateway_env
    with pytest.MonkeyPatch.context() as patch:
        for name, value in profile_env.items():
            patch.setenv(name, value)
        settings = Settings(upstream_urls=[whisper_engine.base_url])
    realtime = settings.realtime.model_copy(update={"idle_timeout_s": 600.0})
    gateway = start_gateway(settings.model_copy(update={"realtime": realtime}))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def readme_runner(
    tmp_path_factory: pytest.TempPathFactory, readme_gateway: RunningGateway, whisper_engine: Any
) -> ReadmeRunner:
    ports = {
        "8001": readme_gateway.base_url.rsplit(":", 1)[1],
        "8000": whisper_engine.base_url.rsplit(":", 1)[1],
    }
    return ReadmeRunner(tmp_path_factory.mktemp("readme"), _BLOCKS, ports)


_ALL = [(readme, runnable) for readme, found in _BLOCKS.items() for runnable in found]


@pytest.mark.parametrize(
    ("readme", "runnable"), _ALL, ids=[runnable.block.where for _, runnable in _ALL]
)
def test_readme_block_runs_and_prints_what_the_readme_shows(
    readme_runner: ReadmeRunner, readme: str, runnable: RunnableBlock
) -> None:
    ran = readme_runner.result(readme, runnable)
    assert ran.returncode == 0, (
        f"{runnable.block.where} exited {ran.returncode}:\n{ran.output[-2000:]}\n"
        f"stderr:\n{ran.errors[-4000:]}"
    )
    if runnable.expected is not None:
        assert_output_matches(runnable, ran.output)


def test_every_readme_has_run_blocks_where_it_shows_commands() -> None:
    """README.md's examples run: a README with none would test nothing."""
    assert _BLOCKS["README.md"], "README.md has no ```bash run / ```python run blocks"
