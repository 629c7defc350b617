"""The engine sitecustomize's config-retry patch, in a real child interpreter that loads it the
way `serve` starts engines (PYTHONPATH), against stand-ins for the two shapes of vLLM's
`repo_utils.with_retry` (0.32 on the CPU engine, 0.26 on the GPU images)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve.profiles import ENGINE_ENV_DIR

WITH_RETRY_0_26 = """
import time
def with_retry(func, log_msg, max_retries=2, retry_delay=2):
    for attempt in range(max_retries):
        try:
            return func()
        except Exception:
            if attempt == max_retries - 1:
                raise
            time.sleep(retry_delay)
"""

WITH_RETRY_0_32 = """
import time
def with_retry(func, log_msg, max_retries=2, retry_delay=2, fatal_errors=()):
    for attempt in range(max_retries):
        try:
            return func()
        except fatal_errors:
            raise
        except Exception:
            if attempt == max_retries - 1:
                raise
            time.sleep(retry_delay)
"""

PROBE = """
import json
from vllm.transformers_utils.repo_utils import with_retry
counts = {}
for error in (ValueError, OSError):
    calls = []
    def failing():
        calls.append(1)
        raise error("no config")
    try:
        with_retry(failing, "probe", 3, 0)
    except error:
        pass
    counts[error.__name__] = len(calls)
print(json.dumps(counts))
"""


@pytest.mark.parametrize(
    ("source", "value_error_calls"), [(WITH_RETRY_0_32, 1), (WITH_RETRY_0_26, 3)]
)
def test_an_unparsable_config_fails_at_once_where_vllm_allows_it(
    tmp_path: Path, source: str, value_error_calls: int
) -> None:
    """0.32: a ValueError (the config file's own answer) is raised at once, a network-like
    OSError still retried. 0.26 has no `fatal_errors`: left untouched, it must still work."""
    package = tmp_path / "vllm" / "transformers_utils"
    package.mkdir(parents=True)
    (tmp_path / "vllm" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "repo_utils.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ENGINE_ENV_DIR), str(tmp_path)])}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ValueError": value_error_calls, "OSError": 3}
