"""Hostile ingestion against the real gateway process (`voxtral-gateway serve`).

gateway_probe.py runs under `unshare --net --mount` with a private /etc/hosts as the resolver
we control: every hostile `file_url` goes through the route as a multipart field and as JSON,
then uploads past each limit, decode bombs, truncated files and allowed controls.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.gateway_probe import HOSTS_FILE
from tests.security.hostile_urls import HOSTILE_URL_IDS

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip to build a loopback-only network namespace")
    hosts = tmp_path_factory.mktemp("netns") / "hosts"
    hosts.write_text(HOSTS_FILE)
    script = (
        f"ip link set lo up && mount --bind {hosts} /etc/hosts && "
        f"exec {sys.executable} -m tests.security.gateway_probe"
    )
    completed = subprocess.run(
        ["unshare", "--net", "--mount", "sh", "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("body", ["form", "json"])
@pytest.mark.parametrize("case", HOSTILE_URL_IDS)
def test_hostile_file_url_is_refused_by_the_gateway(probe: dict, case: str, body: str) -> None:
    result = probe["results"][f"url-{body}:{case}"]
    assert result == {"status": 400, "error_shape_ok": True, "code": "url_not_allowed"}


def test_no_hostile_url_reached_a_target(probe: dict) -> None:
    assert probe["accepted_by_targets"] == 0


@pytest.mark.parametrize("body", ["form", "json"])
@pytest.mark.parametrize(
    "case",
    ["local-path", "local-path-file-uri", "proc-environ", "data-url-not-audio", "base64-garbage"],
)
def test_local_paths_and_bad_inline_audio_are_400(probe: dict, case: str, body: str) -> None:
    result = probe["results"][f"inline-{body}:{case}"]
    assert (result["status"], result["error_shape_ok"]) == (400, True)


@pytest.mark.parametrize(
    "case", ["upload-bytes", "base64-chars", "fetched-bytes", "fetched-declared"]
)
def test_each_size_limit_is_a_413(probe: dict, case: str) -> None:
    result = probe["results"][f"limit:{case}"]
    assert (result["status"], result["error_shape_ok"]) == (413, True)


@pytest.mark.parametrize(
    "case", ["upload:webm", "upload:m4a", "upload:ogg", "upload:mp3", "url:webm"]
)
def test_two_hour_bombs_are_refused_413(probe: dict, case: str) -> None:
    assert probe["results"][f"bomb-{case}"] == {
        "status": 413,
        "error_shape_ok": True,
        "code": "audio_too_long",
    }


def test_bombs_raise_the_gateway_peak_memory_by_less_than_twice_the_cap(probe: dict) -> None:
    growth = probe["gateway_hwm_after_bombs"] - probe["gateway_hwm_before_bombs"]
    assert 0 <= growth < 2 * probe["cap_bytes"], growth


@pytest.mark.parametrize("container", ["wav", "flac", "ogg", "mp3", "m4a", "webm"])
def test_truncated_upload_is_400(probe: dict, container: str) -> None:
    result = probe["results"][f"truncated:{container}"]
    assert (result["status"], result["error_shape_ok"]) == (400, True)


@pytest.mark.parametrize("case", ["allowed-url", "allowed-name", "inline-json"])
def test_allowed_audio_gets_past_ingestion_to_the_upstream(probe: dict, case: str) -> None:
    # The upstream is deliberately absent: a 503 means fetch, decode and VAD all succeeded.
    assert probe["results"][f"control:{case}"]["code"] == "upstream_unavailable"


def test_gateway_keeps_serving_after_all_of_it(probe: dict) -> None:
    assert probe["health_after"] == 200
