"""POST /v1/audio/transcriptions: parse -> pipeline -> render. No audio maths here."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from voxtral_gateway.admission import Ticket
from voxtral_gateway.deps import RuntimeDep, SettingsDep
from voxtral_gateway.errors import GatewayError, error_body, gateway_error_body
from voxtral_gateway.pipeline.events import DONE_MARKER, delta_event, done_event, error_event
from voxtral_gateway.pipeline.ingest import read_transcription_request
from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.pipeline.render import MEDIA_TYPES, render_transcript
from voxtral_gateway.pipeline.token_stream import DeltaCleaner, TextDelta
from voxtral_gateway.protocol import ErrorResponse, TranscriptionRequest
from voxtral_gateway.runtime import PreparedAudio, Runtime, TranscriptionOptions

logger = logging.getLogger(__name__)
router = APIRouter()
T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 413, 429, 500, 502, 503, 504)
}


def _request_body_schema() -> dict[str, Any]:
    """Document the multipart and JSON bodies (parsed by hand, so FastAPI cannot infer them)."""
    # Inline pydantic's `$defs`: a `#/$defs/...` ref inside an operation dangles in the OpenAPI
    # document (its root has no `$defs`), and schema-driven clients and fuzzers drop the body.
    fields = _inline_refs(TranscriptionRequest.model_json_schema())
    multipart = {
        **fields,
        "properties": {"file": {"type": "string", "format": "binary"}, **fields["properties"]},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": fields},
            },
        }
    }


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    definitions = schema.pop("$defs", {})

    def _resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return _resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: _resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [_resolve(item) for item in node]
        return node

    return _resolve(schema)


class ClientDisconnectedError(Exception):
    """The client went away; nothing is sent back."""


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it (and its upstream calls) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        logger.info("[%s] client disconnected; upstream calls cancelled", request.state.request_id)
        raise ClientDisconnectedError
    return task.result()


def server_timing(phases: dict[str, float]) -> str:
    """W3C Server-Timing: where the request's time went, in ms (read = upload received and
    parsed; engine = the wait for the segments' calls after VAD, fan-out included; a head-start
    call began before VAD, which then ran beside it)."""
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in phases.items())


def options_from(params: TranscriptionRequest, use_vad_default: bool) -> TranscriptionOptions:
    return TranscriptionOptions(
        language=params.language,
        prompt=params.prompt,
        temperature=params.temperature,
        use_vad=use_vad_default if params.vad_filter is None else params.vad_filter,
        vad_overrides=params.vad_overrides() or None,
    )


@router.post(
    "/v1/audio/transcriptions",
    responses=_ERRORS,
    openapi_extra=_request_body_schema(),
    response_model=None,
)
async def create_transcription(
    request: Request, runtime: RuntimeDep, settings: SettingsDep
) -> Response:
    started = time.perf_counter()
    metrics = runtime.metrics
    response_format = "json"
    streaming = False
    ticket = None
    prepared = None
    try:
        # Admission comes first: an overloaded gateway answers 429 before reading the body.
        ticket = runtime.admission.admit()
        metrics.in_flight_requests.inc()
        ingested = await read_transcription_request(request, settings)
        read_s = time.perf_counter() - started
        params = ingested.params
        response_format = params.response_format
        options = options_from(params, settings.vad.enabled)
        if params.stream:  # the engine's own token deltas (RunPod's stream keeps segments)
            options = dataclasses.replace(options, stream_tokens=True)
        prepared = await runtime.prepare(ingested.source, options, ticket.add_batch)
        timing = {"read": read_s, "decode": prepared.decode_s, "vad": prepared.vad_s}
        if params.stream:
            streaming = True
            metrics.requests.labels("200", "stream").inc()
            return StreamingResponse(
                _stream_events(request, runtime, prepared, options, ticket),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "Server-Timing": server_timing(timing)},
                # Released by the stream's end too; this covers a stream that never started.
                background=BackgroundTask(_finish, request, ticket, prepared),
            )
        engine_started = time.perf_counter()
        transcript = await _cancel_on_disconnect(
            request, _collect(runtime, prepared, options, ticket)
        )
        timing["engine"] = time.perf_counter() - engine_started
        # A long file's later chunks were decoded while `engine` ran: count them too.
        timing.update(decode=prepared.decode_s, vad=prepared.vad_s)
        body = render_transcript(transcript, params.response_format)
        metrics.requests.labels("200", response_format).inc()
        timing["total"] = time.perf_counter() - started
        headers = {"Server-Timing": server_timing(timing)}
        if isinstance(body, dict):
            return JSONResponse(body, headers=headers)
        return Response(body, media_type=MEDIA_TYPES[params.response_format], headers=headers)
    except GatewayError as exc:
        metrics.requests.labels(str(exc.status_code), response_format).inc()
        raise
    except ClientDisconnectedError:
        metrics.requests.labels("499", response_format).inc()
        return Response(status_code=499)
    finally:
        if ticket is not None:
            metrics.in_flight_requests.dec()
            if not streaming:
                await _finish(request, ticket, prepared)
        metrics.request_seconds.observe(time.perf_counter() - started)


async def _finish(request: Request, ticket: Ticket, prepared: PreparedAudio | None) -> None:
    """Give the request's load back, stop a head-start call nobody took, delete the upload."""
    ticket.release()
    if prepared is not None:
        prepared.discard()
    await request.close()


async def _collect(
    runtime: Runtime, prepared: PreparedAudio, options: TranscriptionOptions, ticket: Ticket
) -> Transcript:
    results = []
    async for result in runtime.segment_results(prepared, options):
        ticket.segment_done()
        results.append(result)
    return runtime.finish(prepared, results, options)


async def _stream_events(
    request: Request,
    runtime: Runtime,
    prepared: PreparedAudio,
    options: TranscriptionOptions,
    ticket: Ticket,
) -> AsyncIterator[str]:
    """The engine's deltas of the segment next in file order as they stream (a segment's
    whole text when its call did not stream); failures after the 200 become an error event."""
    results: list[SegmentResult] = []
    cleaner = DeltaCleaner()
    streamed = False  # the current segment's text went out as deltas already
    try:
        async for item in _until_client_leaves(request, runtime.segment_results(prepared, options)):
            if isinstance(item, TextDelta):
                streamed = True
                if text := cleaner.clean(item.text):
                    yield delta_event(
                        SegmentResult(item.index, item.start_s, item.end_s, ""),
                        text=text,
                        segment_count=prepared.segment_count,
                    )
                continue
            ticket.segment_done()
            results.append(item)
            # Deltas concatenate to the done text (DeltaCleaner: the join rule of stitch).
            if not streamed and (text := cleaner.clean(item.text)):
                yield delta_event(item, text=text, segment_count=prepared.segment_count)
            cleaner.next_segment()
            streamed = False
        yield done_event(runtime.finish(prepared, results, options))
    except ClientDisconnectedError:
        logger.info(
            "[%s] client left mid-stream; upstream calls cancelled", request.state.request_id
        )
        return
    except GatewayError as exc:
        logger.warning("[%s] stream failed: %s", request.state.request_id, exc.message)
        yield error_event(gateway_error_body(exc))
    except Exception:
        logger.exception("[%s] stream failed", request.state.request_id)
        yield error_event(
            error_body("Internal server error", "server_error", code="internal_error")
        )
    finally:
        ticket.release()
    yield DONE_MARKER


async def _until_client_leaves(
    request: Request, results: AsyncIterator[SegmentResult]
) -> AsyncIterator[SegmentResult]:
    """Pass results through; if the client disconnects first, cancel the fan-out at once.

    Without this, a gone client is noticed only when the next event fails to send, which for
    a long segment can be a minute away, while the engine keeps working for nobody. One task
    drives the fan-out from start to end: its TaskGroup must live and die in one task.
    """
    queue: asyncio.Queue[SegmentResult | Exception | None] = asyncio.Queue()

    async def _drive() -> None:
        try:
            async for result in results:
                queue.put_nowait(result)
        except Exception as exc:  # handed to the consumer, which raises it in its own task
            queue.put_nowait(exc)
        else:
            queue.put_nowait(None)

    driver = asyncio.ensure_future(_drive())
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                raise ClientDisconnectedError
            item = getter.result()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        watcher.cancel()
        driver.cancel()  # cancels the fan-out's TaskGroup, hence every upstream call
        with contextlib.suppress(asyncio.CancelledError):
            await driver
