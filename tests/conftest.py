"""Shared fixtures live in tests/fixtures/, one module per kind of real part."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.engines",
    "tests.fixtures.audio",
    "tests.fixtures.gateway",
    "tests.fixtures.fake_upstream",
    "tests.fixtures.health_server",
    "tests.fixtures.ssrf",
]


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback traffic must never be routed through a proxy from the environment."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
