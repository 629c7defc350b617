"""Locust load test for a Voxtral endpoint: OpenAI multipart route or RunPod serverless routes.

    # OpenAI route (the gateway, or vLLM itself), headless with CSV:
    locust -f bench/locustfile.py --headless -u 8 -r 8 -t 60s --csv out/openai \\
        --host http://127.0.0.1:8080 --route openai --corpus .cache/corpus

    # RunPod serverless, synchronous and queued (/run then /status polling):
    RUNPOD_API_KEY=... locust -f bench/locustfile.py --headless -u 4 -r 4 -t 120s \\
        --host https://api.runpod.ai/v2/ENDPOINT_ID --route runsync --csv out/runsync
    ... --route run --audio-input url --audio-url-base https://my-bucket.example/corpus/

Keys come from OPENAI_API_KEY (openai route) and RUNPOD_API_KEY (runpod routes). Each user
picks a short file (clean/pauses/noisy) or a long one (kind ``long``) by ``--short-weight`` and
``--long-weight``; request names carry the pool, so the CSV splits them. Audio seconds are a
custom metric: rows of type ``AUDIO`` whose "response time" is the file's duration in ms, and at
the end a ``<csv>_audio.json`` with total audio seconds and RTFx (audio s / test wall s).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task
from locust.env import Environment

logger = logging.getLogger(__name__)

SHORT_KINDS = ("clean", "pauses", "noisy")
TERMINAL_STATUSES = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


@dataclass
class _AudioFile:
    name: str
    path: Path
    duration_s: float
    data: bytes
    data_b64: str


@dataclass
class _AudioTotals:
    """Audio seconds answered with success, for the end-of-test RTFx."""

    started_at: float = field(default_factory=time.monotonic)
    audio_s: float = 0.0
    requests: int = 0
    by_pool: dict[str, float] = field(default_factory=dict)

    def add(self, pool: str, audio_s: float) -> None:
        self.audio_s += audio_s
        self.requests += 1
        self.by_pool[pool] = self.by_pool.get(pool, 0.0) + audio_s


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--route", choices=["openai", "runsync", "run"], default="openai")
    parser.add_argument("--corpus", default=".cache/corpus", help="built by python -m bench.corpus")
    parser.add_argument("--short-weight", type=float, default=9.0)
    parser.add_argument("--long-weight", type=float, default=1.0)
    parser.add_argument("--long-items", default="", help="comma list of long item ids; default all")
    parser.add_argument("--model", default="", help="default: first of /v1/models (openai route)")
    parser.add_argument("--response-format", default="json")
    parser.add_argument("--max-tokens", type=int, default=0, help="sends max_completion_tokens")
    parser.add_argument("--audio-input", choices=["base64", "url"], default="base64")
    parser.add_argument("--audio-url-base", default="", help="runpod url input: URL of corpus dir")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds, /status polls")
    parser.add_argument("--job-timeout", type=float, default=600.0, help="seconds, /run jobs")


def _load_pools(options: Any) -> dict[str, list[_AudioFile]]:
    corpus = Path(options.corpus)
    manifest = json.loads((corpus / "manifest.json").read_text())
    wanted_long = {part for part in options.long_items.split(",") if part}
    pools: dict[str, list[_AudioFile]] = {"short": [], "long": []}
    for item in manifest["items"]:
        pool = "long" if item["kind"] == "long" else "short"
        if item["kind"] not in SHORT_KINDS and pool == "short":
            continue
        if pool == "long" and (
            options.long_weight <= 0 or (wanted_long and item["id"] not in wanted_long)
        ):
            continue
        data = (corpus / item["path"]).read_bytes()
        pools[pool].append(
            _AudioFile(
                item["id"],
                corpus / item["path"],
                item["duration_s"],
                data,
                base64.b64encode(data).decode() if options.route != "openai" else "",
            )
        )
    return pools


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    environment.audio_pools = _load_pools(options)  # type: ignore[attr-defined]
    environment.audio_totals = _AudioTotals()  # type: ignore[attr-defined]
    if not environment.audio_pools["short"] and not environment.audio_pools["long"]:  # type: ignore[attr-defined]
        raise RuntimeError(f"no audio in {options.corpus}; run python -m bench.corpus first")


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    totals: _AudioTotals | None = getattr(environment, "audio_totals", None)
    if totals is None:
        return
    wall_s = time.monotonic() - totals.started_at
    summary = {
        "audio_s": totals.audio_s,
        "ok_requests": totals.requests,
        "wall_s": wall_s,
        "rtfx": totals.audio_s / wall_s if wall_s > 0 else None,
        "audio_s_by_pool": totals.by_pool,
        "route": environment.parsed_options.route,
        "host": environment.host,
    }
    logger.info("audio summary: %s", summary)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        Path(f"{prefix}_audio.json").write_text(json.dumps(summary, indent=1) + "\n")


class TranscriptionUser(HttpUser):
    """One simulated client sending files back to back (with a short think time)."""

    wait_time = between(0.0, 0.5)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.options = options
        self.model = options.model or (self._discover_model() if options.route == "openai" else "")
        key_name = "OPENAI_API_KEY" if options.route == "openai" else "RUNPOD_API_KEY"
        key = os.environ.get(key_name, "")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def _discover_model(self) -> str:
        key = os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with self.client.get(
            "/v1/models", headers=headers, name="models", catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"/v1/models answered {r.status_code}")
                return ""
            return r.json()["data"][0]["id"]

    def _pick(self) -> tuple[str, _AudioFile]:
        pools = self.environment.audio_pools  # type: ignore[attr-defined]
        weights = {
            "short": self.options.short_weight if pools["short"] else 0.0,
            "long": self.options.long_weight if pools["long"] else 0.0,
        }
        (pool,) = random.choices(list(weights), weights=list(weights.values()))
        return pool, random.choice(pools[pool])

    @task
    def transcribe(self) -> None:
        pool, audio = self._pick()
        route = self.options.route
        is_ok = (
            self._openai(pool, audio)
            if route == "openai"
            else self._runpod(pool, audio, is_sync=route == "runsync")
        )
        if is_ok:
            self.environment.audio_totals.add(pool, audio.duration_s)  # type: ignore[attr-defined]
            # Custom metric: one AUDIO row per pool, "response time" = audio duration in ms.
            self.environment.events.request.fire(
                request_type="AUDIO",
                name=f"audio_ms {pool}",
                response_time=audio.duration_s * 1000.0,
                response_length=len(audio.data),
                exception=None,
                context={},
            )

    def _form(self) -> dict[str, str]:
        form = {"model": self.model, "response_format": self.options.response_format}
        if self.options.max_tokens:
            form["max_completion_tokens"] = str(self.options.max_tokens)
        return form

    def _openai(self, pool: str, audio: _AudioFile) -> bool:
        files = {"file": (audio.path.name, audio.data, "audio/wav")}
        with self.client.post(
            "/v1/audio/transcriptions",
            data=self._form(),
            files=files,
            headers=self.headers,
            name=f"openai {pool}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return False
            return True

    def _job_input(self, audio: _AudioFile) -> dict[str, Any]:
        job: dict[str, Any] = {k: v for k, v in self._form().items() if v}
        if self.options.audio_input == "url":
            job["audio_url"] = (
                self.options.audio_url_base.rstrip("/")
                + "/"
                + audio.path.relative_to(Path(self.options.corpus)).as_posix()
            )
        else:
            job["audio_base64"] = audio.data_b64
        return {"input": job}

    def _runpod(self, pool: str, audio: _AudioFile, *, is_sync: bool) -> bool:
        """Submit a job, poll /status until it ends; one JOB row times the whole of it."""
        name = f"{'runsync' if is_sync else 'run+status'} {pool}"
        start = time.perf_counter()
        path = "/runsync" if is_sync else "/run"
        submit = self.client.post(path, json=self._job_input(audio), headers=self.headers)
        body = _json_or_none(submit) or {}
        if body.get("status") in TERMINAL_STATUSES:
            error = _job_error(body)
            self._fire(name, start, error)
            return error is None
        if submit.status_code != 200 or "id" not in body:
            self._fire(name, start, f"{path} answered {submit.status_code}: {submit.text[:200]}")
            return False
        # /run queues; /runsync answers IN_PROGRESS when its own wait runs out. Both: poll.
        return self._poll(name, start, body["id"])

    def _poll(self, name: str, start: float, job_id: str) -> bool:
        deadline = start + self.options.job_timeout
        while time.perf_counter() < deadline:
            time.sleep(self.options.poll_interval)
            status = self._status(job_id)
            body = _json_or_none(status) or {}
            if body.get("status") in TERMINAL_STATUSES:
                error = _job_error(body)
                self._fire(name, start, error)
                return error is None
        self._fire(name, start, f"job {job_id} not finished in {self.options.job_timeout} s")
        return False

    def _status(self, job_id: str) -> Any:
        # RunPod's API takes GET; the SDK's local test server (--rp_serve_api) only POST.
        url = f"/status/{job_id}"
        if not getattr(self, "status_by_post", False):
            with self.client.get(
                url, headers=self.headers, name="/status", catch_response=True
            ) as r:
                if r.status_code != 405:
                    return r
                r.success()
                self.status_by_post = True
        return self.client.post(url, headers=self.headers, name="/status")

    def _fire(self, name: str, start: float, error: str | None) -> None:
        self.environment.events.request.fire(
            request_type="JOB",
            name=name,
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=0,
            exception=RuntimeError(error) if error else None,
            context={},
        )


def _json_or_none(response: Any) -> dict[str, Any] | None:
    if response is None:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _job_error(body: dict[str, Any]) -> str | None:
    """None when a finished job COMPLETED with output and no error item."""
    if body.get("status") != "COMPLETED":
        return f"job {body.get('status')}: {str(body.get('error'))[:200]}"
    output = body.get("output")
    items = output if isinstance(output, list) else [output]
    for item in items:
        if isinstance(item, dict) and item.get("error"):
            return f"job error: {str(item['error'])[:200]}"
    return None if output is not None else "job COMPLETED without output"
