"""Real vLLM engines killed with SIGKILL under load: clean errors, bounded time, recovery,
failover between two engines. Engines are the tiny random Voxtral (never emits EOS: the
gateway's token cap bounds every call)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor, wait

import httpx
import pytest

from tests.reliability.conftest import (
    KillableEngine,
    engine_requests_done,
    engine_requests_running,
)

pytestmark = pytest.mark.engine

TRANSCRIBE = "/v1/audio/transcriptions"
CONCURRENT_CLIENTS = 20
TOKEN_CAP = 128  # per segment; long enough that the kill lands mid-generation
ERROR_DEADLINE_S = 10.0  # every client hears back this soon after the kill
RECOVERY_LIMIT_S = 5.0


def _post(base_url: str, audio: bytes, timeout_s: float = 120.0) -> tuple[httpx.Response, float]:
    """One transcription on its own connection; returns the response and when it ended."""
    with httpx.Client(timeout=timeout_s, trust_env=False) as client:
        response = client.post(
            base_url + TRANSCRIBE,
            files={"file": ("clip.wav", audio, "audio/wav")},
            data={"model": "tiny-voxtral"},
        )
    return response, time.monotonic()


def _assert_clean_upstream_error(response: httpx.Response) -> None:
    assert response.status_code in (502, 503), (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "upstream_error" and error["message"]


def _gateway_pending_segments(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10, trust_env=False).text
    found = re.search(r"^voxtral_pending_segments (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _wait_until(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def test_kill9_under_load_then_failover_and_recovery(
    voxtral_engine, killable_engine: KillableEngine, gateway_factory, speech_10min, speech_60s
) -> None:
    """One kill and one restart of the victim engine (each restart costs ~40 s of CI), seen
    through two gateways: `lone` has only the victim, `pair` has the victim and a survivor."""
    killable_engine.ensure_running()
    survivor, victim = voxtral_engine.base_url, killable_engine.base_url
    pair = gateway_factory(upstream_urls=[survivor, victim], max_output_tokens=8)
    lone = gateway_factory(
        upstream_urls=[victim], max_output_tokens=TOKEN_CAP, segment_timeout_s=60
    )

    # A long file's segments go to both engines (least outstanding work first).
    before = {url: engine_requests_done(url) for url in (survivor, victim)}
    response, _ = _post(pair.base_url, speech_10min.read_bytes(), timeout_s=300)
    assert response.status_code == 200, response.text
    served = {url: engine_requests_done(url) - before[url] for url in (survivor, victim)}
    total = sum(served.values())
    assert total >= 15, served  # a 10-minute clip is many <=30 s segments
    print(f"\nRELIABILITY spread: 10 min clip, {total:.0f} segments, per engine {served}")
    # Least outstanding work, not round robin: a slower engine gets fewer, but never none.
    assert min(served.values()) >= max(4, 0.15 * total), served

    # Kill the victim while `lone` has concurrent long requests on it: clean errors, fast.
    audio = speech_60s.read_bytes()
    with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        futures = [pool.submit(_post, lone.base_url, audio) for _ in range(CONCURRENT_CLIENTS)]
        # The engine's gauge is sampled per scheduler step and a quiet machine can finish a
        # burst between two polls; the gateway's pending-segment gauge holds until each segment
        # is answered, so either one seeing 4 means the kill lands on work in flight.
        assert _wait_until(
            lambda: (
                engine_requests_running(victim) >= 4
                or _gateway_pending_segments(lone.base_url) >= 4
            ),
            timeout_s=120,
        ), killable_engine.log_tail()
        killable_engine.kill9()
        killed_at = time.monotonic()
        done, hung = wait(futures, timeout=ERROR_DEADLINE_S + 20)
    assert not hung, f"{len(hung)} clients hung"
    outcomes = [future.result() for future in done]
    statuses = sorted(response.status_code for response, _ in outcomes)
    assert 500 not in statuses
    failed = [(r, at) for r, at in outcomes if r.status_code != 200]
    assert failed, "the kill should have cut some requests short"
    for response, _ in failed:
        _assert_clean_upstream_error(response)
    slowest_error_s = max(at - killed_at for _, at in failed)
    assert slowest_error_s < ERROR_DEADLINE_S
    print(
        f"RELIABILITY kill9: {CONCURRENT_CLIENTS} clients x 60 s clip; statuses {statuses}; "
        f"last error {slowest_error_s:.2f} s after the kill"
    )
    assert httpx.get(lone.base_url + "/ready", timeout=30).status_code == 503

    # `pair` after the kill: segments that try the dead engine are retried on the live one,
    # which then marks it unhealthy; no client sees a failure.
    before_survivor = engine_requests_done(survivor)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _post(pair.base_url, audio)[0], range(8)))
    assert [r.status_code for r in results] == [200] * 8, [r.text for r in results]
    assert engine_requests_done(survivor) - before_survivor >= 8 * 2

    # The engine comes back on the same port: `lone` answers 200 within seconds of the engine's
    # /health, and `pair` puts it back in rotation after its cool-down; neither is restarted.
    healthy_s = killable_engine.start()
    healthy_at = time.monotonic()
    first_ok_s = None
    while time.monotonic() - healthy_at < RECOVERY_LIMIT_S:
        if _post(lone.base_url, audio)[0].status_code == 200:
            first_ok_s = time.monotonic() - healthy_at
            break
    assert first_ok_s is not None, f"no 200 within {RECOVERY_LIMIT_S} s of the engine's /health"
    victim_before = engine_requests_done(victim)

    def victim_serves_again() -> bool:
        assert _post(pair.base_url, audio)[0].status_code == 200
        return engine_requests_done(victim) > victim_before

    assert _wait_until(victim_serves_again, timeout_s=30, interval_s=0.2)
    print(
        f"RELIABILITY recovery: engine restart {healthy_s:.1f} s; first 200 {first_ok_s:.2f} s "
        f"after the engine was healthy; back in the pair's rotation "
        f"{time.monotonic() - healthy_at:.1f} s after healthy (gateways not restarted)"
    )
