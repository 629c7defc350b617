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

With `"dialect": "mistral"` the input is Mistral's transcription request instead (`model`,
`language`, `temperature`, `stream`, `diarize`, `context_bias`, `speaker_references`,
`timestamp_granularities`; audio still as `audio_url` / `audio_base64`), and the output is
Mistral's response body, or with `stream` its `transcription.*` events as
`{"type": ..., **payload}` items, exactly as the gateway's `/mistral` route sends them.

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
from voxtral_gateway.mistral.dialect import (
    MistralReply,
    mistral_events,
    options_from,
    validate_mistral_fields,
)
from voxtral_gateway.mistral.protocol import MistralTranscriptionRequest
from voxtral_gateway.pipeline.ingest import validate_fields
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
    return validate_fields(_job_fields(job_input))


def parse_mistral_job_input(job_input: Any) -> MistralTranscriptionRequest:
    """A `"dialect": "mistral"` job's input, validated as the `/mistral` route validates."""
    fields = _job_fields({k: v for k, v in job_input.items() if k != "dialect"})
    if "audio" in fields:  # Mistral's request has one audio field; inline audio rides in it too
        fields["file_url"] = fields.pop("audio")
    return validate_mistral_fields(fields)


def _is_mistral_job(job_input: Any) -> bool:
    if not isinstance(job_input, dict) or "dialect" not in job_input:
        return False
    if job_input["dialect"] not in ("openai", "mistral"):
        raise InvalidRequestError(
            "'dialect' must be 'openai' or 'mistral'.", param="dialect", code="invalid_parameter"
        )
    return job_input["dialect"] == "mistral"


def _job_fields(job_input: Any) -> dict[str, Any]:
    """The job's fields with its audio key renamed to the request model's."""
    if not isinstance(job_input, dict):
        raise InvalidRequestError("Job input must be a JSON object.", code="invalid_input")
    fields = {k: v for k, v in job_input.items() if not (k == "dialect" and v == "openai")}
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
    return fields


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
            if _is_mistral_job(job.get("input")):
                async for item in self._handle_mistral(job.get("input")):
                    yield item
                return
            request = parse_job_input(job.get("input"))
            service = (await self.runtime()).service
            # Options first: a language the model lacks is a 400 before any audio is fetched.
            options = await service.options_for(request)
            source = await service.audio_source(file_url=request.file_url, audio=request.audio)
            if request.stream:
                prepared = await service.prepare(source, options)
                try:
                    async for event in service.stream_events(prepared, options):
                        yield event
                finally:
                    prepared.discard()  # a head-start call nobody took (the job was cancelled)
            else:
                transcript = await service.transcribe(source, options)
                yield service.render(transcript, request)
        except GatewayError as exc:
            logger.warning("[%s] job failed: %s", job_id, exc.message)
            yield _error_output(gateway_error_body(exc))
        except Exception:
            logger.exception("[%s] job failed", job_id)
            yield _error_output(
                error_body("Internal server error", "server_error", code="internal_error")
            )

    async def _handle_mistral(self, job_input: dict[str, Any]) -> AsyncIterator[Any]:
        """Mistral's request in, Mistral's body (or its events) out, as the route does."""
        params = parse_mistral_job_input(job_input)
        runtime = await self.runtime()
        service = runtime.service
        options = await options_from(params, service, runtime.speaker_stage)
        source = await service.audio_source(file_url=params.file_url)
        reply = MistralReply(params, service.language_for(options), service.settings)
        prepared = await service.prepare(source, options)
        try:
            if params.stream:
                results = service.segment_results(prepared, options)
                async for event_type, payload in mistral_events(
                    service, prepared, options, reply, results
                ):
                    yield {"type": event_type, **payload}
            else:
                yield reply.body(await service.collect(prepared, options))
        finally:
            prepared.discard()  # a head-start call nobody took (the job was cancelled)


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
