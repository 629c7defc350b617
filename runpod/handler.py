"""RunPod serverless worker: the gateway's transcription service behind RunPod's job queue.

This door only translates: job input -> the gateway's request model -> `runtime.service`
(service.py) -> output items. Audio, options and stream events come from the service, as for
the HTTP route.

Job input (RunPod wraps it as {"input": {...}}):

    audio_url        https URL of the audio (fetched with the gateway's SSRF-guarded fetcher) or a
                     data URL, exactly as the gateway's `file_url`; or
    audio_base64     the audio itself, base64 or a data URL (counts against RunPod's payload cap)
    model, language, prompt, response_format, temperature, stream
                     as in OpenAI's /v1/audio/transcriptions (plus the gateway's vad_filter,
                     chunking_strategy, timestamp_granularities)

Output, yielded as a stream (`return_aggregate_stream`, so /runsync and /status get the list):
  stream=false  one item: the rendered body (a dict for json/verbose_json, a string otherwise)
  stream=true   `transcript.text.delta` items carrying the engine's token deltas, segment by
                segment in file order, then `transcript.text.done` with the whole text: the
                gateway's SSE events as JSON
  failure       {"error": message, "type", "code", "param"}; RunPod marks the job FAILED

Run locally with RunPod's test server:
    python runpod/handler.py --rp_serve_api --rp_api_port 8010
Settings come from VOXTRAL_* variables exactly as for the gateway (engine at
VOXTRAL_UPSTREAM_URLS, default http://127.0.0.1:8000).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from voxtral_gateway.errors import (
    AudioLimitError,
    GatewayError,
    InvalidRequestError,
    UpstreamUnavailableError,
    error_body,
    gateway_error_body,
)
from voxtral_gateway.pipeline.ingest import validate_fields
from voxtral_gateway.pipeline.render import render_transcript
from voxtral_gateway.protocol import TranscriptionRequest
from voxtral_gateway.runtime import Runtime, open_runtime
from voxtral_gateway.settings import Settings

logger = logging.getLogger("voxtral_worker")

# RunPod rejects larger request bodies before they reach a worker: /run 10 MB, /runsync 20 MB.
RUN_PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024
RUNSYNC_PAYLOAD_LIMIT_BYTES = 20 * 1024 * 1024
_MB = 1024 * 1024

# Job keys that map onto the gateway's request fields; audio keys are renamed.
_AUDIO_KEYS = {"audio_url": "file_url", "audio_base64": "audio"}
_JOB_PARAMS = {gateway: job for job, gateway in _AUDIO_KEYS.items()}


def parse_job_input(job_input: Any) -> TranscriptionRequest:
    """Validate a job's input with the gateway's own request model; raise InvalidRequestError."""
    if not isinstance(job_input, dict):
        raise InvalidRequestError("Job input must be a JSON object.", code="invalid_input")
    fields = dict(job_input)
    for forbidden in _AUDIO_KEYS.values():
        if forbidden in fields:
            raise InvalidRequestError(
                f"Unknown parameter {forbidden!r}: send 'audio_url' or 'audio_base64'.",
                param=forbidden,
                code="invalid_parameter",
            )
    given = [key for key in _AUDIO_KEYS if fields.get(key)]
    if len(given) != 1:
        raise InvalidRequestError(
            "Send exactly one of 'audio_url' or 'audio_base64'.", param="audio_url"
        )
    (audio_key,) = given
    value = fields.pop(audio_key)
    if not isinstance(value, str):
        raise InvalidRequestError(f"'{audio_key}' must be a string.", param=audio_key)
    if audio_key == "audio_base64" and len(value) > RUNSYNC_PAYLOAD_LIMIT_BYTES:
        raise AudioLimitError(
            f"'audio_base64' is {len(value) / _MB:.1f} MB; RunPod accepts job payloads up to "
            f"{RUN_PAYLOAD_LIMIT_BYTES // _MB} MB on /run and {RUNSYNC_PAYLOAD_LIMIT_BYTES // _MB} "
            "MB on /runsync. Put the file at an https URL and send 'audio_url' instead.",
            param="audio_base64",
            code="payload_too_large",
        )
    fields[_AUDIO_KEYS[audio_key]] = value
    return validate_fields(fields)


class Worker:
    """Holds one Runtime (HTTP pool, VAD model) for every job this worker process runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._exit_stack = contextlib.AsyncExitStack()
        self._runtime: Runtime | None = None
        self._opening = asyncio.Lock()

    async def runtime(self) -> Runtime:
        # Opened lazily: RunPod's event loop exists only once jobs start flowing.
        async with self._opening:
            if self._runtime is None:
                self._runtime = await self._exit_stack.enter_async_context(
                    open_runtime(self.settings)
                )
        return self._runtime

    async def close(self) -> None:
        await self._exit_stack.aclose()
        self._runtime = None

    async def wait_for_engine(self, timeout_s: float) -> None:
        """Block until one engine answers a real inference, so no job lands on a cold engine."""
        runtime = await self.runtime()
        deadline = time.monotonic() + timeout_s
        while not await runtime.readiness.check():
            if time.monotonic() > deadline:
                raise UpstreamUnavailableError(f"No engine became ready within {timeout_s:.0f} s.")
            await asyncio.sleep(2.0)

    async def handle(self, job: dict[str, Any]) -> AsyncIterator[Any]:
        """RunPod handler (an async generator, so results stream as segments finish)."""
        job_id = job.get("id", "?")
        try:
            request = parse_job_input(job.get("input"))
            service = (await self.runtime()).service
            source = await service.audio_source(file_url=request.file_url, audio=request.audio)
            options = service.options_for(request)
            if request.stream:
                prepared = await service.prepare(source, options)
                try:
                    async for event in service.stream_events(prepared, options):
                        yield event
                finally:
                    prepared.discard()  # a head-start call nobody took (the job was cancelled)
            else:
                transcript = await service.transcribe(source, options)
                yield render_transcript(transcript, request.response_format)
        except GatewayError as exc:
            logger.warning("[%s] job failed: %s", job_id, exc.message)
            yield _error_output(gateway_error_body(exc))
        except Exception:
            logger.exception("[%s] job failed", job_id)
            yield _error_output(
                error_body("Internal server error", "server_error", code="internal_error")
            )


def _error_output(body: dict[str, Any]) -> dict[str, Any]:
    # RunPod fails the job on a truthy top-level "error" and keeps only that string.
    error = body["error"]
    param = _JOB_PARAMS.get(error["param"], error["param"])
    return {"error": error["message"], "type": error["type"], "code": error["code"], "param": param}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Voxtral RunPod serverless worker")
    parser.add_argument(
        "--max-concurrent-jobs",
        type=int,
        default=8,
        help="jobs one worker runs at once (segments of all jobs share the engine's batch)",
    )
    parser.add_argument(
        "--engine-wait-s", type=float, default=1800.0, help="how long to wait for the engine"
    )
    return parser


def main() -> None:
    import runpod

    # RunPod's SDK reads its own --rp_* flags from sys.argv; ours are parsed around them.
    args, rest = build_parser().parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(name)s: %(message)s"
    )
    asyncio.run(_wait_for_engine(settings, args.engine_wait_s))
    # A fresh Worker: its HTTP pool must belong to the event loop RunPod runs jobs on.
    worker = Worker(settings)
    runpod.serverless.start(
        {
            "handler": worker.handle,
            "return_aggregate_stream": True,
            "concurrency_modifier": lambda _current: args.max_concurrent_jobs,
        }
    )


async def _wait_for_engine(settings: Settings, timeout_s: float) -> None:
    worker = Worker(settings)
    try:
        await worker.wait_for_engine(timeout_s)
    finally:
        await worker.close()


if __name__ == "__main__":
    main()
