"""One transcription request over OpenAI's multipart route, timed.

Speaks both stream dialects a client meets: OpenAI's ``transcript.text.delta`` /
``transcript.text.done`` events (the gateway) and vLLM's ``transcription.chunk`` objects with
``choices[0].delta.content`` (bare vLLM). Time to first token is the time to the first non-empty
delta, counted from before the upload, as a user would see it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
_ERROR_BODY_CHARS = 300


@dataclass(frozen=True)
class Job:
    """What to send: one corpus file, with its known text for WER."""

    item_id: str
    kind: str
    path: Path
    audio_s: float
    reference: str


@dataclass(frozen=True)
class RequestRecord:
    """What happened to one request. ``status`` is 0 when no HTTP response arrived."""

    item_id: str
    kind: str
    target: str
    level: float
    status: int
    is_ok: bool
    start_s: float
    latency_s: float
    ttft_s: float | None
    audio_s: float
    text: str
    reference: str
    error: str | None


def api_base(url: str) -> str:
    """``http://h:p``, ``http://h:p/`` and ``http://h:p/v1`` all mean the same server."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


async def discover_model(
    client: httpx.AsyncClient, base_url: str, headers: Mapping[str, str]
) -> str:
    """First model id that the server lists at ``/v1/models``."""
    response = await client.get(f"{api_base(base_url)}/v1/models", headers=dict(headers))
    response.raise_for_status()
    models = response.json().get("data") or []
    if not models:
        raise RuntimeError(f"{base_url} lists no models")
    return str(models[0]["id"])


@dataclass(frozen=True)
class TokenBudget:
    """``max_completion_tokens`` in proportion to the file's length, as the gateway budgets each
    segment; a fixed cap would give a 10-minute file as few tokens as a 3-second one."""

    tokens_per_audio_s: float
    min_tokens: int = 16

    def for_duration(self, audio_s: float) -> int:
        return max(self.min_tokens, math.ceil(audio_s * self.tokens_per_audio_s))


@dataclass(frozen=True)
class Target:
    """A server to measure, with the form fields every request to it carries."""

    name: str
    base_url: str
    model: str
    form: Mapping[str, str]
    headers: Mapping[str, str]
    is_stream: bool
    token_budget: TokenBudget | None = None


class AudioCache:
    """Reads each file once; long files are large, so keep them only while needed."""

    def __init__(self) -> None:
        self._bytes: dict[Path, bytes] = {}

    def get(self, path: Path) -> bytes:
        if path not in self._bytes:
            self._bytes[path] = path.read_bytes()
        return self._bytes[path]


async def transcribe(
    client: httpx.AsyncClient,
    target: Target,
    job: Job,
    audio: bytes,
    *,
    level: float,
    origin_s: float,
) -> RequestRecord:
    """Send one request and time it; never raises for HTTP or transport failures."""
    form = {"model": target.model, "response_format": "json", **target.form}
    if target.is_stream:
        form["stream"] = "true"
    if target.token_budget is not None:
        form["max_completion_tokens"] = str(target.token_budget.for_duration(job.audio_s))
    files = {"file": (job.path.name, audio, "audio/wav")}
    url = f"{api_base(target.base_url)}{TRANSCRIPTIONS_PATH}"
    start = time.perf_counter()
    status, text, ttft_s, error = 0, "", None, None
    try:
        async with client.stream(
            "POST", url, data=form, files=files, headers=dict(target.headers)
        ) as response:
            status = response.status_code
            if status != 200:
                body = (await response.aread()).decode("utf-8", "replace")
                error = body[:_ERROR_BODY_CHARS]
            elif target.is_stream:
                text, ttft_s, error = await _read_stream(response, start)
            else:
                text = _text_of(json.loads(await response.aread()))
    except (httpx.HTTPError, json.JSONDecodeError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:_ERROR_BODY_CHARS]
    latency_s = time.perf_counter() - start
    return RequestRecord(
        item_id=job.item_id,
        kind=job.kind,
        target=target.name,
        level=level,
        status=status,
        is_ok=status == 200 and error is None,
        start_s=start - origin_s,
        latency_s=latency_s,
        ttft_s=ttft_s,
        audio_s=job.audio_s,
        text=text,
        reference=job.reference,
        error=error,
    )


def _text_of(body: object) -> str:
    if isinstance(body, dict) and isinstance(body.get("text"), str):
        return body["text"]
    raise ValueError(f"no 'text' in response: {str(body)[:100]}")


async def _read_stream(
    response: httpx.Response, start: float
) -> tuple[str, float | None, str | None]:
    """Returns (text, ttft_s, error) from an SSE body in either dialect."""
    pieces: list[str] = []
    done_text: str | None = None
    ttft_s: float | None = None
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            break
        event = json.loads(payload)
        if "error" in event or event.get("type") == "error":
            return "".join(pieces), ttft_s, json.dumps(event)[:_ERROR_BODY_CHARS]
        if event.get("type") == "transcript.text.done":
            done_text = event.get("text", "")
            continue
        delta = event.get("delta") if event.get("type") == "transcript.text.delta" else None
        if delta is None and event.get("choices"):
            delta = (event["choices"][0].get("delta") or {}).get("content")
        if delta:
            if ttft_s is None:
                ttft_s = time.perf_counter() - start
            pieces.append(delta)
    return (done_text if done_text is not None else "".join(pieces)), ttft_s, None
