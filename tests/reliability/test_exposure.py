"""What the public port exposes: per-key rate limits, no CORS by default, /metrics on an
admin port when one is set. Upstream is a closed port; silent clips need no engine."""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.fixtures.gateway import free_port

TRANSCRIBE = "/v1/audio/transcriptions"


def _silence_wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * 16_000), np.float32), 16_000, format="WAV")
    return buffer.getvalue()


def _post(http: httpx.Client, base_url: str, key: str, audio: bytes) -> httpx.Response:
    return http.post(
        base_url + TRANSCRIBE,
        files={"file": ("a.wav", audio, "audio/wav")},
        data={"model": "voxtral"},
        headers={"Authorization": f"Bearer {key}"},
    )


def _assert_rate_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded"
    return int(response.headers["retry-after"])


def test_requests_per_minute_is_per_key_with_retry_after(gateway_factory, http) -> None:
    gateway = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"],
        api_keys=["key-a", "key-b"],
        rate_limits={"requests_per_minute": 2},
    )
    clip = _silence_wav(1.0)
    assert [_post(http, gateway.base_url, "key-a", clip).status_code for _ in range(2)] == [200] * 2
    retry_after_s = _assert_rate_limited(_post(http, gateway.base_url, "key-a", clip))
    # One token comes back every 30 s at 2 per minute.
    assert 1 <= retry_after_s <= 30
    assert _post(http, gateway.base_url, "key-b", clip).status_code == 200
    # Unknown keys are refused by auth first and spend nobody's tokens.
    assert _post(http, gateway.base_url, "key-x", clip).status_code == 401
    # Probes are never rate limited.
    assert all(http.get(gateway.base_url + "/health").status_code == 200 for _ in range(5))


def test_audio_seconds_per_minute_charges_decoded_length(gateway_factory, http) -> None:
    gateway = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"],
        api_keys=["key-a", "key-b"],
        rate_limits={"audio_s_per_minute": 10},
    )
    six_s = _silence_wav(6.0)
    # 10 s of credit: the first 6 s clip leaves 4 s, enough to admit a second (debt of 2 s).
    assert _post(http, gateway.base_url, "key-a", six_s).status_code == 200
    assert _post(http, gateway.base_url, "key-a", six_s).status_code == 200
    retry_after_s = _assert_rate_limited(_post(http, gateway.base_url, "key-a", six_s))
    # 2 s of debt refills at 10/60 s per s: ~12 s (a little less as time passes).
    assert 10 <= retry_after_s <= math.ceil(2 / (10 / 60))
    assert _post(http, gateway.base_url, "key-b", six_s).status_code == 200


def test_core_gateway_leaves_no_platform_probe_open(gateway_factory, http) -> None:
    # /ping is RunPod's (runpod/lb.py opens it on its app); the core gateway knows no such path.
    gateway = gateway_factory(upstream_urls=[f"http://127.0.0.1:{free_port()}"], api_keys=["k"])
    assert http.get(gateway.base_url + "/ping").status_code == 401
    assert http.get(gateway.base_url + "/health").status_code == 200


def test_no_cors_headers_by_default(gateway_factory, http) -> None:
    gateway = gateway_factory(upstream_urls=[f"http://127.0.0.1:{free_port()}"])
    origin = {"Origin": "https://evil.example"}
    preflight = http.options(
        gateway.base_url + TRANSCRIBE,
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    simple = http.get(gateway.base_url + "/health", headers=origin)
    posted = http.post(
        gateway.base_url + TRANSCRIBE,
        files={"file": ("a.wav", _silence_wav(1.0))},
        headers=origin,
    )
    assert posted.status_code == 200
    for response in (preflight, simple, posted):
        leaked = [h for h in response.headers if h.lower().startswith("access-control-")]
        assert leaked == [], (response.request.method, leaked)
    assert preflight.status_code in (404, 405)


def _wait_ok(http: httpx.Client, url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if http.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_metrics_only_on_the_admin_port(tmp_path: Path, http) -> None:
    port, admin_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VOXTRAL_PORT": str(port),
        "VOXTRAL_ADMIN_PORT": str(admin_port),
        "VOXTRAL_UPSTREAM_URLS": f'["http://127.0.0.1:{free_port()}"]',
        "VOXTRAL_API_KEYS": '["k"]',
    }
    log = tmp_path / "gateway.log"
    exe = Path(sys.executable).parent / "voxtral-gateway"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [str(exe), "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    public, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    try:
        _wait_ok(http, public + "/health", process, log)
        _wait_ok(http, admin + "/metrics", process, log)
        key = {"Authorization": "Bearer k"}
        assert http.get(public + "/metrics", headers=key).status_code == 404
        assert "/metrics" not in http.get(public + "/openapi.json", headers=key).text
        assert _post(http, public, "k", _silence_wav(1.0)).status_code == 200
        # The admin port sees the public port's traffic, and serves nothing else.
        scraped = http.get(admin + "/metrics").text
        assert 'voxtral_requests_total{format="json",status="200"} 1.0' in scraped
        assert http.post(admin + TRANSCRIBE).status_code in (404, 405)
        assert http.get(admin + "/openapi.json").status_code == 404
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        for url in (public + "/health", admin + "/metrics"):
            with pytest.raises(httpx.TransportError):
                http.get(url)
    finally:
        if process.poll() is None:
            process.kill()
