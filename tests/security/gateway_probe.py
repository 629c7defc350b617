"""Hostile ingestion through a real `voxtral-gateway serve` process, inside `unshare --net --mount`.

The namespace has only `lo`; a private /etc/hosts (bind-mounted by the test) is the resolver
we control, so names like `loop.test` resolve to loopback targets through the gateway's own
system resolver and no DNS query can leave. Every forbidden target is a connection counter;
the only reachable server is the audio/redirect server on 127.0.0.3. Prints one JSON object for
tests/security/test_gateway_ingest.py.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from tests.fixtures.audio import synthesize
from tests.fixtures.ssrf import SERVER_HOST, AudioServer, open_target_listeners
from tests.security.containers import encode, packet_bomb
from tests.security.hostile_urls import hostile_urls

HOSTS_FILE = """\
127.0.0.1 localhost a.localhost
127.0.0.2 loop.test
::1 v6.test
::ffff:127.0.0.1 mapped.test
127.0.0.3 mixed.test audio.test
127.0.0.1 mixed.test
"""
CAP_S = 300.0
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_INLINE_BYTES = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _vm_hwm_bytes(pid: int) -> int:
    """Peak resident memory of `pid` so far (the kernel's high-water mark)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return -1


def _start_gateway(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "VOXTRAL_UPSTREAM_URLS": '["http://127.0.0.1:9"]',  # nothing listens: 503 past ingest
        "VOXTRAL_FETCH__ALLOW_HTTP": "true",
        "VOXTRAL_FETCH__ALLOWED_PORTS": "[]",
        "VOXTRAL_FETCH__ALLOWED_NETWORKS": f'["{SERVER_HOST}/32"]',
        "VOXTRAL_FETCH__MAX_REDIRECTS": "5",
        "VOXTRAL_LIMITS__MAX_DURATION_S": str(CAP_S),
        "VOXTRAL_LIMITS__MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        "VOXTRAL_LIMITS__MAX_INLINE_BYTES": str(MAX_INLINE_BYTES),
        "VOXTRAL_LOG_LEVEL": "WARNING",
    }
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voxtral_gateway.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if gateway.poll() is not None:
            raise RuntimeError(gateway.stderr.read().decode()[-3000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return gateway
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("gateway did not start")


def _outcome(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    return {
        "status": response.status_code,
        "error_shape_ok": isinstance(error, dict)
        and {"message", "type", "param", "code"} <= set(error),
        "code": error.get("code") if isinstance(error, dict) else None,
    }


def main() -> None:
    if sorted(name for _i, name in socket.if_nameindex()) != ["lo"]:
        print(json.dumps({"error": "not an isolated network namespace"}))
        sys.exit(2)
    speech = synthesize("The quick brown fox jumps over the lazy dog.")
    speech_wav = encode(np.concatenate([np.zeros(4800, np.float32), speech]), 16_000, "wav")
    listeners = open_target_listeners()
    server = AudioServer(SERVER_HOST, speech_wav)
    port = _free_port()
    gateway = _start_gateway(port)
    base = f"http://127.0.0.1:{port}"
    endpoint = f"{base}/v1/audio/transcriptions"
    results: dict[str, dict] = {}
    with httpx.Client(timeout=120, trust_env=False) as client:

        def form(fields: dict[str, str], files: dict | None = None) -> dict:
            parts = {k: (None, v) for k, v in fields.items()}
            return _outcome(client.post(endpoint, files={**parts, **(files or {})}))

        def as_json(fields: dict[str, str]) -> dict:
            return _outcome(client.post(endpoint, json=fields))

        for name, url in hostile_urls(listeners.port, server.port):
            results[f"url-form:{name}"] = form({"model": "voxtral", "file_url": url})
            results[f"url-json:{name}"] = as_json({"model": "voxtral", "file_url": url})
        for name, value in {
            "local-path": "/etc/passwd",
            "local-path-file-uri": "file:///etc/passwd",
            "proc-environ": "/proc/self/environ",
            "data-url-not-audio": "data:text/plain;base64,aGVsbG8=",
            "base64-garbage": "!!!!",
        }.items():
            results[f"inline-form:{name}"] = form({"model": "voxtral", "file_url": value})
            results[f"inline-json:{name}"] = as_json({"model": "voxtral", "audio": value})
        accepted_by_targets = listeners.total_accepted()

        # Size limits, each checked before the expensive step.
        big = b"RIFF" + b"\0" * (MAX_UPLOAD_BYTES + 1024)
        results["limit:upload-bytes"] = form(
            {"model": "voxtral"}, {"file": ("big.wav", big, "audio/wav")}
        )
        results["limit:base64-chars"] = as_json(
            {"model": "voxtral", "audio": "A" * (MAX_INLINE_BYTES + 4)}
        )
        results["limit:fetched-bytes"] = form(
            {"model": "voxtral", "file_url": server.url("/forever")}
        )
        results["limit:fetched-declared"] = form(
            {"model": "voxtral", "file_url": server.url("/declared-huge")}
        )

        # Bombs by upload and by URL, with the gateway's peak memory before and after.
        hwm_before = _vm_hwm_bytes(gateway.pid)
        for container in ("webm", "m4a", "ogg", "mp3"):
            bomb = packet_bomb(2 * 3600.0, container)
            results[f"bomb-upload:{container}"] = form(
                {"model": "voxtral"}, {"file": (f"bomb.{container}", bomb, "audio/ogg")}
            )
        server.body = packet_bomb(2 * 3600.0, "webm")
        results["bomb-url:webm"] = form({"model": "voxtral", "file_url": server.url("/audio")})
        hwm_after = _vm_hwm_bytes(gateway.pid)

        # Truncated uploads of every container.
        for container in ("wav", "flac", "ogg", "mp3", "m4a", "webm"):
            whole = encode(speech, 16_000, container)
            results[f"truncated:{container}"] = form(
                {"model": "voxtral"}, {"file": (f"cut.{container}", whole[:40], "audio/wav")}
            )

        # Controls: allowed audio is fetched, decoded and segmented, then fails only upstream
        # (503: nothing listens there); inline base64 of the same file likewise.
        server.body = speech_wav
        results["control:allowed-url"] = form(
            {"model": "voxtral", "file_url": server.url("/audio")}
        )
        results["control:allowed-name"] = form(
            {"model": "voxtral", "file_url": server.url("/audio", host="audio.test")}
        )
        inline = "data:audio/wav;base64," + base64.b64encode(speech_wav).decode()
        results["control:inline-json"] = as_json({"model": "voxtral", "audio": inline})
        health = client.get(f"{base}/health").status_code
    gateway.terminate()
    gateway.wait(timeout=30)
    print(
        json.dumps(
            {
                "results": results,
                "accepted_by_targets": accepted_by_targets,
                "health_after": health,
                "gateway_hwm_before_bombs": hwm_before,
                "gateway_hwm_after_bombs": hwm_after,
                "cap_bytes": int(CAP_S * 16_000 * 4),
            }
        )
    )


if __name__ == "__main__":
    main()
