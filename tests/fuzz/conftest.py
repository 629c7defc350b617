"""Fuzz budget: small by default (CI), scaled up with VOXTRAL_FUZZ_SCALE for the big run."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def fuzz_scale() -> int:
    """Multiplier on every fuzz test's example count (1 in CI; 20+ for bench/results/fuzz.md)."""
    return max(1, int(os.environ.get("VOXTRAL_FUZZ_SCALE", "1")))
