"""POST /v1/audio/transcriptions: parse -> service -> render. No audio maths here.

`handle_audio_request` also serves /v1/audio/translations (routes/translations.py) with
`task="translate"`, a TranscriptionService option."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from voxtral_gateway.admission import Ticket
from voxtral_gateway.deps import AudioChargeDep, RuntimeDep, SettingsDep
from voxtral_gateway.engine_calls import Task
from voxtral_gateway.errors import GatewayError, error_body, gateway_error_body
from voxtral_gateway.metrics import RequestRecord
from voxtral_gateway.options import TranscriptionOptions
from voxtral_gateway.pipeline.events import DONE_MARKER, error_event, format_sse
from voxtral_gateway.pipeline.ingest import read_transcription_request
from voxtral_gateway.pipeline.prepared import PreparedAudio
from voxtral_gateway.pipeline.render import MEDIA_TYPES
from voxtral_gateway.protocol import TranscriptionRequest
from voxtral_gateway.ratelimit import AudioCharge
from voxtral_gateway.routes.lifecycle import (
    ClientDisconnectedError,
    cancel_on_disconnect,
    finish_request,
    server_timing,
    until_client_leaves,
)
from voxtral_gateway.routes.schema import ERROR_RESPONSES, body_schema
from voxtral_gateway.service import TranscriptionService
from voxtral_gateway.settings import Settings

if TYPE_CHECKING:
    from voxtral_gateway.runtime import Runtime

logger = logging.getLogger(__name__)
router = APIRouter()
T = TypeVar("T")


@router.post(
    "/v1/audio/transcriptions",
    responses=ERROR_RESPONSES,
    openapi_extra=body_schema(TranscriptionRequest),
    response_model=None,
)
async def create_transcription(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, audio_charge: AudioChargeDep
) -> Response:
    return await handle_audio_request(request, runtime, settings, audio_charge, task="transcribe")


async def handle_audio_request(
    request: Request,
    runtime: Runtime,
    settings: Settings,
    audio_charge: AudioCharge | None,
    *,
    task: Task,
) -> Response:
    """One audio request, transcription or translation (routes/translations.py): the same
    ingestion, limits, VAD fan-out and streaming; `task` only changes what the engine is asked."""
    started = time.perf_counter()
    record = RequestRecord(runtime.metrics, started=started)
    service = runtime.service
    streaming = False
    ticket = None
    prepared = None
    try:
        # Admission comes first: an overloaded gateway answers 429 before reading the body.
        ticket = runtime.admission.admit(charge_audio=audio_charge)
        record.admitted()
        ingested = await read_transcription_request(request, settings, task=task)
        params = ingested.params
        record.response_format = params.response_format
        # Options first: a language the model lacks is a 400 before any audio is fetched.
        options = await service.options_for(params, task)
        source = await service.audio_source(
            upload=ingested.upload, file_url=params.file_url, audio=params.audio
        )
        read_s = time.perf_counter() - started
        prepared = await service.prepare(source, options, ticket.add_chunk)
        timing = {"read": read_s, "decode": prepared.decode_s, "vad": prepared.vad_s}
        if params.stream:
            streaming = True
            record.response_format = "stream"
            return StreamingResponse(
                _stream_events(request, service, prepared, options, ticket, record),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "Server-Timing": server_timing(timing)},
                # The stream's end releases and counts too; this covers a stream never started.
                background=BackgroundTask(finish_request, request, ticket, prepared, record),
            )
        engine_started = time.perf_counter()
        transcript = await cancel_on_disconnect(
            request, service.collect(prepared, options, on_result=lambda _: ticket.segment_done())
        )
        timing["engine"] = time.perf_counter() - engine_started
        if prepared.speakers is not None:
            timing["speakers"] = prepared.speakers.wait_s  # part of `engine`: the wait after it
        # A long file's later chunks were decoded while `engine` ran: count them too.
        timing.update(decode=prepared.decode_s, vad=prepared.vad_s)
        if options.word_timestamps:
            timing["align"] = prepared.align_s
        body = service.render(transcript, params)
        timing["total"] = time.perf_counter() - started
        headers = {"Server-Timing": server_timing(timing)}
        record.finish(200)
        if isinstance(body, dict):
            return JSONResponse(body, headers=headers)
        return Response(body, media_type=MEDIA_TYPES[params.response_format], headers=headers)
    except GatewayError as exc:
        record.finish(exc.status_code)
        raise
    except ClientDisconnectedError:
        record.finish(499)
        return Response(status_code=499)
    finally:
        if not streaming:
            record.finish(500)  # anything not counted above became a 500
            if ticket is not None:
                await finish_request(request, ticket, prepared, record)


async def _stream_events(
    request: Request,
    service: TranscriptionService,
    prepared: PreparedAudio,
    options: TranscriptionOptions,
    ticket: Ticket,
    record: RequestRecord,
) -> AsyncIterator[str]:
    """The service's events as SSE; failures after the 200 become an error event. The
    request is counted here, when the stream ends, with the status its events carried."""
    results = until_client_leaves(request, service.segment_results(prepared, options))
    status = 499  # unless the stream gets to its end or to an error event
    try:
        async for event in service.stream_events(
            prepared, options, results=results, on_result=lambda _: ticket.segment_done()
        ):
            yield format_sse(event)
        status = 200
    except ClientDisconnectedError:
        logger.info(
            "[%s] client left mid-stream; upstream calls cancelled", request.state.request_id
        )
        return
    except GatewayError as exc:
        logger.warning("[%s] stream failed: %s", request.state.request_id, exc.message)
        status = exc.status_code
        yield error_event(gateway_error_body(exc))
    except Exception:
        logger.exception("[%s] stream failed", request.state.request_id)
        status = 500
        yield error_event(
            error_body("Internal server error", "server_error", code="internal_error")
        )
    finally:
        ticket.release()
        record.finish(status)
    yield DONE_MARKER
