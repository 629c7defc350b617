"""The gateway's own behaviour around the engine: errors, limits, auth, overload, drain.

Engines here are a closed port (down), or fakes for faults a real vLLM cannot show on demand.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import soundfile as sf

from tests.fixtures.gateway import free_port


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), "The quick brown fox jumps over the lazy dog."], check=True
    )
    return path.read_bytes()


def _silence_wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * 16_000), np.float32), 16_000, format="WAV")
    return buffer.getvalue()


def _post(client: httpx.Client, base_url: str, audio: bytes, **fields: str) -> httpx.Response:
    return client.post(
        f"{base_url}/v1/audio/transcriptions",
        files={"file": ("audio.wav", audio, "audio/wav")},
        data={"model": "voxtral", **fields},
    )


def _assert_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


def test_silence_returns_empty_text_without_upstream_call(gateway_factory, http) -> None:
    # The engine is a closed port: any upstream call would turn into a 503.
    gateway = gateway_factory(upstream_urls=[f"http://127.0.0.1:{free_port()}"])
    response = _post(http, gateway.base_url, _silence_wav(3.0), response_format="verbose_json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "" and body["segments"] == []
    assert body["duration"] == pytest.approx(3.0)


def test_engine_down_is_503_and_gateway_stays_up(gateway_factory, http, speech_wav) -> None:
    gateway = gateway_factory(upstream_urls=[f"http://127.0.0.1:{free_port()}"])
    error = _assert_openai_error(_post(http, gateway.base_url, speech_wav), 503)
    assert error["code"] == "upstream_unavailable"
    assert http.get(f"{gateway.base_url}/health").status_code == 200
    assert http.get(f"{gateway.base_url}/ready").status_code == 503


def test_engine_500_is_502(gateway_factory, http, speech_wav, fake_upstream_500) -> None:
    gateway = gateway_factory(upstream_urls=[fake_upstream_500.base_url])
    error = _assert_openai_error(_post(http, gateway.base_url, speech_wav), 502)
    assert error["type"] == "upstream_error"


def test_stalled_engine_is_504_within_the_deadline(
    gateway_factory, http, speech_wav, fake_upstream_stall
) -> None:
    gateway = gateway_factory(upstream_urls=[fake_upstream_stall.base_url], segment_timeout_s=1.0)
    started = time.monotonic()
    error = _assert_openai_error(_post(http, gateway.base_url, speech_wav), 504)
    assert error["code"] == "upstream_timeout"
    # The 1 s deadline, not the 120 s default; slack for decode and VAD on a busy 2-core box.
    assert time.monotonic() - started < 30.0


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "docx"}, "response_format"),
        ({"timestamp_granularities[]": "word"}, "timestamp_granularities"),
        ({"temperature": "7"}, "temperature"),
        ({"chunking_strategy": '{"type": "server_vad", "threshold": 3}'}, "chunking_strategy"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    gateway_factory, http, speech_wav, fields, param
) -> None:
    gateway = gateway_factory(upstream_urls=[f"http://127.0.0.1:{free_port()}"])
    error = _assert_openai_error(_post(http, gateway.base_url, speech_wav, **fields), 400)
    assert error["param"].startswith(param)


def test_not_audio_is_400_and_missing_file_is_400(gateway_factory, http) -> None:
    gateway = gateway_factory(upstream_urls=[f"http://127.0.0.1:{free_port()}"])
    assert (
        _assert_openai_error(_post(http, gateway.base_url, b"\x00" * 5000), 400)["param"] == "file"
    )
    response = http.post(f"{gateway.base_url}/v1/audio/transcriptions", data={"model": "x"})
    _assert_openai_error(response, 400)


def test_oversized_body_is_413_before_it_is_read(gateway_factory, http) -> None:
    gateway = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"], limits={"max_upload_bytes": 10_000}
    )
    error = _assert_openai_error(_post(http, gateway.base_url, _silence_wav(5.0)), 413)
    assert error["code"] == "request_too_large"

    # Chunked upload without Content-Length: the 413 arrives while the body is still unsent.
    port = int(gateway.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: multipart/form-data; boundary=abc\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        # A well-formed part header first: the multipart parser reads the body as it arrives,
        # and a malformed start would be a 400 before the limit is reached.
        preamble = (
            b'--abc\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n"
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(preamble), preamble))
        for _ in range(20):  # 20 kB of a file part that would go on for ever
            sock.sendall(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]


def test_api_keys_are_required_when_configured(gateway_factory, http, speech_wav) -> None:
    gateway = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"], api_keys=["key-one", "key-two"]
    )
    url = f"{gateway.base_url}/v1/audio/transcriptions"
    files = {"file": ("a.wav", _silence_wav(1.0))}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic key-one"}):
        _assert_openai_error(http.post(url, files=files, headers=headers), 401)
    for key in ("key-one", "key-two"):
        response = http.post(url, files=files, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
    # Probes stay open for load balancers; a Host header cannot re-route the decision.
    assert http.get(f"{gateway.base_url}/health").status_code == 200
    spoofed = http.get(f"{gateway.base_url}/metrics", headers={"Host": "localhost/health"})
    assert spoofed.status_code == 401


def test_overload_is_429_with_retry_after(
    gateway_factory, http, speech_wav, fake_upstream_stall
) -> None:
    gateway = gateway_factory(
        upstream_urls=[fake_upstream_stall.base_url], max_in_flight_requests=1
    )
    first = threading.Thread(
        target=_post, args=(httpx.Client(timeout=30), gateway.base_url, speech_wav)
    )
    first.start()
    _wait_for(lambda: fake_upstream_stall.calls, "the first request never reached the engine")
    response = _post(http, gateway.base_url, speech_wav)
    _assert_openai_error(response, 429)
    assert response.headers["retry-after"] == "2"
    fake_upstream_stall.release.set()
    first.join(timeout=30)
    assert _post(http, gateway.base_url, speech_wav).status_code == 200


def _gateway_process(
    tmp_path: Path, upstream_url: str, *args: str, **env_extra: str
) -> tuple[subprocess.Popen, str, Path]:
    """`voxtral-gateway serve ARGS` as a real process on a free port; answers once every
    worker is up (many fresh connections in a row get /health 200)."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "VOXTRAL_PORT": str(port),
        "VOXTRAL_UPSTREAM_URLS": f'["{upstream_url}"]',
        "VOXTRAL_DRAIN_TIMEOUT_S": "30",
        # The code under test, where a checkout runs it from its own tree.
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        **env_extra,
    }
    log_path = tmp_path / "gateway.log"
    exe = Path(sys.executable).parent / "voxtral-gateway"
    process = subprocess.Popen(
        [str(exe), "serve", *args], env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    answered = 0
    while answered < 20:
        try:
            with httpx.Client(trust_env=False) as fresh:
                ok = fresh.get(f"{base_url}/health").status_code == 200
            answered = answered + 1 if ok else 0
        except httpx.TransportError:
            answered = 0
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(log_path.read_text())
        time.sleep(0.05)
    return process, base_url, log_path


def _wait_for_log(log_path: Path, needle: str, count: int, what: str) -> None:
    """Wait until the gateway's log holds `needle` `count` times (generous deadline: 2 cores)."""
    deadline = time.monotonic() + 60
    while log_path.read_text().count(needle) < count:
        assert time.monotonic() < deadline, f"{what}:\n{log_path.read_text()}"
        time.sleep(0.05)


def _wait_for(predicate, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_sigterm_drains_in_flight_and_refuses_new(
    tmp_path: Path, http, speech_wav, fake_upstream_stall
) -> None:
    process, base_url, log_path = _gateway_process(tmp_path, fake_upstream_stall.base_url)
    try:
        results: dict[str, httpx.Response] = {}
        in_flight = threading.Thread(
            target=lambda: results.setdefault(
                "first", _post(httpx.Client(timeout=60), base_url, speech_wav)
            )
        )
        in_flight.start()
        _wait_for(lambda: fake_upstream_stall.calls, "the first request never reached the engine")
        process.terminate()
        # The drain flag is set in the same loop step that logs this line.
        _wait_for_log(log_path, "draining:", 1, "SIGTERM never started the drain")
        refused = _post(http, base_url, speech_wav)
        _assert_openai_error(refused, 503)
        assert refused.headers["retry-after"]
        assert process.poll() is None  # still finishing the in-flight request
        fake_upstream_stall.release.set()
        in_flight.join(timeout=30)
        assert results["first"].status_code == 200
        assert results["first"].json()["text"] == "ok"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_browser_page_is_open_but_paths_around_it_are_not(gateway_factory, http) -> None:
    gateway = gateway_factory(upstream_urls=[f"http://127.0.0.1:{free_port()}"], api_keys=["k"])
    assert http.get(f"{gateway.base_url}/").status_code == 200
    # The open prefix must not open what a dot-segment would reach on a normalising proxy.
    sneaky = http.post(
        f"{gateway.base_url}/static/%2E%2E/v1/audio/transcriptions",
        files={"file": ("a.wav", _silence_wav(1.0))},
    )
    assert sneaky.status_code in (401, 404)
    assert http.get(f"{gateway.base_url}/v1/models").status_code == 401


def test_websocket_key_as_subprotocol_for_browsers(gateway_factory) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    gateway = gateway_factory(upstream_urls=[f"http://127.0.0.1:{free_port()}"], api_keys=["k1"])
    url = gateway.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    with connect(url, subprotocols=["realtime", "openai-insecure-api-key.k1"]) as ws:
        assert "session" in ws.recv(timeout=10)
    with pytest.raises(InvalidStatus):
        connect(url, subprotocols=["realtime", "openai-insecure-api-key.wrong"])


def _metric(base_url: str, sample: str) -> float:
    """One sample of /metrics, read over a fresh connection (so any worker may answer)."""
    with httpx.Client(trust_env=False) as fresh:
        text = fresh.get(f"{base_url}/metrics").text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_workers_share_the_port_admission_limit_and_drain_together(
    tmp_path: Path, http, speech_wav, fake_upstream_stall
) -> None:
    """Two processes on one port admit 2 requests in all (the limit is gateway-wide), then
    SIGTERM drains both."""
    process, base_url, log_path = _gateway_process(
        tmp_path, fake_upstream_stall.base_url, "--workers", "2", VOXTRAL_MAX_IN_FLIGHT_REQUESTS="2"
    )
    try:
        statuses: list[int] = []

        def _one() -> None:
            with httpx.Client(timeout=60, trust_env=False) as client:
                statuses.append(_post(client, base_url, speech_wav).status_code)

        threads = [threading.Thread(target=_one) for _ in range(12)]
        for thread in threads:
            thread.start()
        # Two admitted requests reach the (stalled) engine, whichever workers hold them; the
        # other ten get 429. Per-process limits would have let up to four through.
        _wait_for(lambda: len(statuses) == 10, f"not ten answers: {statuses}")
        _wait_for(lambda: len(fake_upstream_stall.calls) == 2, log_path.read_text())
        assert sorted(statuses) == [429] * 10
        for _ in range(6):  # whichever worker answers: totals of both
            assert _metric(base_url, "voxtral_in_flight_requests") == 2
            assert _metric(base_url, 'voxtral_requests_total{format="json",status="429"}') == 10
        process.terminate()
        _wait_for_log(log_path, "draining:", 2, "SIGTERM did not reach both workers")
        fake_upstream_stall.release.set()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(statuses) == [200, 200] + [429] * 10
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_a_killed_worker_releases_its_admission_share(
    tmp_path: Path, speech_wav, fake_upstream_stall
) -> None:
    """Limit 1, two workers: the worker holding the one request is killed; the supervisor
    frees its share and its in-flight gauge, and the other worker admits again."""
    process, base_url, log_path = _gateway_process(
        tmp_path, fake_upstream_stall.base_url, "--workers", "2", VOXTRAL_MAX_IN_FLIGHT_REQUESTS="1"
    )
    outcomes: list[object] = []

    def _one() -> None:
        try:
            with httpx.Client(timeout=60, trust_env=False) as client:
                outcomes.append(_post(client, base_url, speech_wav).status_code)
        except httpx.TransportError as exc:  # the worker holding it is killed
            outcomes.append(exc)

    try:
        held = threading.Thread(target=_one)
        held.start()
        _wait_for(lambda: len(fake_upstream_stall.calls) == 1, log_path.read_text())
        with httpx.Client(timeout=60, trust_env=False) as client:
            assert _post(client, base_url, speech_wav).status_code == 429
        engine_port = int(fake_upstream_stall.base_url.rsplit(":", 1)[1])
        holder = next(
            child
            for child in psutil.Process(process.pid).children()
            if any(c.raddr and c.raddr.port == engine_port for c in child.net_connections("tcp"))
        )
        holder.kill()
        _wait_for_log(log_path, "admission load is released", 1, "the supervisor missed it")
        held.join(timeout=30)
        assert _metric(base_url, "voxtral_in_flight_requests") == 0
        again = threading.Thread(target=_one)
        again.start()
        _wait_for(lambda: len(fake_upstream_stall.calls) == 2, log_path.read_text())
        assert _metric(base_url, "voxtral_in_flight_requests") == 1
        fake_upstream_stall.release.set()
        again.join(timeout=30)
        assert outcomes[-1] == 200
    finally:
        fake_upstream_stall.release.set()
        process.terminate()
        process.wait(timeout=30)


def test_workers_share_each_keys_rate_limit_and_the_admin_port(tmp_path: Path) -> None:
    """2 requests a minute for a key, two workers, four requests on fresh connections: two
    pass whichever workers answer (per-process buckets would have let all four through), and
    both workers serve the admin port's /metrics with the totals."""
    closed_engine = f"http://127.0.0.1:{free_port()}"  # silence never reaches it
    admin_port = free_port()
    process, base_url, log_path = _gateway_process(
        tmp_path,
        closed_engine,
        "--workers",
        "2",
        VOXTRAL_RATE_LIMITS__REQUESTS_PER_MINUTE="2",
        VOXTRAL_ADMIN_PORT=str(admin_port),
    )
    try:
        statuses = []
        for _ in range(4):
            with httpx.Client(timeout=60, trust_env=False) as fresh:
                fresh.headers["Authorization"] = "Bearer client-a"
                statuses.append(_post(fresh, base_url, _silence_wav(1.0)).status_code)
        assert statuses == [200, 200, 429, 429]
        admin_url = f"http://127.0.0.1:{admin_port}"
        for _ in range(6):
            assert _metric(admin_url, 'voxtral_requests_total{format="json",status="200"}') == 2
        assert "exited" not in log_path.read_text()  # no worker died binding the admin port
    finally:
        process.terminate()
        process.wait(timeout=30)
