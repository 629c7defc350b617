"""Literal private and metadata targets, tried only inside a network namespace with just `lo`.

`netns_probe.py` runs under `unshare --net`; the addresses it aims at exist only on that
namespace's loopback, each with a connection counter, so a guard bug shows as a counted
connection and can never reach the real 169.254.169.254 or the LAN.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.netns_probe import ADDRESSES, netns_cases

REPO_ROOT = Path(__file__).resolve().parents[2]


def _namespace_script() -> str:
    adds = " && ".join(
        f"ip addr add {address}/{128 if ':' in address else 32} dev lo" for address in ADDRESSES
    )
    return f"ip link set lo up && {adds} && exec {sys.executable} -m tests.security.netns_probe"


@pytest.fixture(scope="module")
def probe() -> dict:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip to build a loopback-only network namespace")
    completed = subprocess.run(
        ["unshare", "--net", "sh", "-c", _namespace_script()],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", [name for name, _url in netns_cases()])
def test_private_target_is_refused_by_policy(probe: dict, case: str) -> None:
    assert probe["results"][case] == ["UrlRejectedError", 400]


def test_no_private_listener_saw_a_connection(probe: dict) -> None:
    assert probe["accepted"] == {}


def test_public_address_is_fetchable_with_default_settings(probe: dict) -> None:
    assert probe["public_result"] == ["fetched", 200]
    # Only this control reached /audio: names with a private answer among public ones never did.
    assert probe["public_paths"].count("/audio") == 1


def test_listener_counts_a_connection_once_its_network_is_allowed(probe: dict) -> None:
    assert probe["control_result"][0] == "FetchError"
    assert probe["control_accepted"] == 1
