"""POST /mistral/v1/audio/transcriptions: Mistral's dialect onto the same pipeline.

Why a path prefix: both SDKs post multipart to the same path, `/v1/audio/transcriptions`
(OpenAI's `base_url` ends in `/v1`; Mistral's `server_url` is the bare host and the SDK adds
`/v1/...`). One response cannot satisfy both: Mistral's SDK requires `model`, token `usage` and
`language`, reads errors as `{"object": "error", ...}` and stream events as `event:` lines with
`transcription.*` types, none of which OpenAI's dialect may change. Guessing the dialect from
the body (Mistral's SDK always sends `diarize=false`) would turn a typo in an OpenAI request
into a different API. So `server_url="http://gateway:8001/mistral"` selects Mistral's dialect,
and the OpenAI routes stay byte for byte what they were.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from voxtral_gateway.admission import Ticket
from voxtral_gateway.deps import AudioChargeDep, RuntimeDep, SettingsDep
from voxtral_gateway.errors import GatewayError
from voxtral_gateway.metrics import RequestRecord
from voxtral_gateway.mistral import render
from voxtral_gateway.mistral.dialect import (
    MistralReply,
    mistral_events,
    options_from,
    validate_mistral_fields,
)
from voxtral_gateway.mistral.protocol import (
    MISTRAL_PREFIX,
    MistralTranscriptionRequest,
    mistral_error_body,
)
from voxtral_gateway.options import TranscriptionOptions
from voxtral_gateway.pipeline.ingest import read_fields
from voxtral_gateway.pipeline.prepared import PreparedAudio
from voxtral_gateway.routes.lifecycle import (
    ClientDisconnectedError,
    cancel_on_disconnect,
    finish_request,
    server_timing,
    until_client_leaves,
)
from voxtral_gateway.routes.schema import body_schema
from voxtral_gateway.service import TranscriptionService

logger = logging.getLogger(__name__)

router = APIRouter(prefix=MISTRAL_PREFIX)


def _error_response(exc: GatewayError) -> JSONResponse:
    body = mistral_error_body(exc.message, exc.error_type, param=exc.param, code=exc.code)
    return JSONResponse(body, exc.status_code, headers=exc.headers)


@router.post(
    "/v1/audio/transcriptions",
    response_model=None,
    openapi_extra=body_schema(MistralTranscriptionRequest),
)
async def create_mistral_transcription(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, audio_charge: AudioChargeDep
) -> Response:
    started = time.perf_counter()
    record = RequestRecord(runtime.metrics, response_format="mistral", started=started)
    service = runtime.service
    streaming = False
    ticket = None
    prepared = None
    try:
        ticket = runtime.admission.admit(charge_audio=audio_charge)
        record.admitted()
        fields, upload = await read_fields(request, settings)
        params = validate_mistral_fields(fields)
        # Options first: a bad language or reference is a 400 before any audio is fetched.
        options = await options_from(params, service, runtime.speaker_stage)
        source = await service.audio_source(
            upload=upload.file if upload else None, file_url=params.file_url
        )
        read_s = time.perf_counter() - started
        prepared = await service.prepare(source, options, ticket.add_chunk)
        timing = {"read": read_s, "decode": prepared.decode_s, "vad": prepared.vad_s}
        reply = MistralReply(params, service.language_for(options), settings)
        if params.stream:
            streaming = True
            record.response_format = "mistral_stream"
            return StreamingResponse(
                _stream_events(request, service, prepared, options, ticket, reply, record),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "Server-Timing": server_timing(timing)},
                background=BackgroundTask(finish_request, request, ticket, prepared, record),
            )
        transcript = await cancel_on_disconnect(
            request, service.collect(prepared, options, on_result=lambda _: ticket.segment_done())
        )
        if options.word_timestamps:
            timing["align"] = prepared.align_s
        timing["total"] = time.perf_counter() - started
        record.finish(200)
        return JSONResponse(
            reply.body(transcript), headers={"Server-Timing": server_timing(timing)}
        )
    except GatewayError as exc:
        record.finish(exc.status_code)
        return _error_response(exc)
    except ClientDisconnectedError:
        record.finish(499)
        return Response(status_code=499)
    except Exception:
        logger.exception("[%s] unhandled error", request.state.request_id)
        record.finish(500)
        body = mistral_error_body("Internal server error", "server_error", code="internal_error")
        return JSONResponse(body, 500)
    finally:
        if not streaming and ticket is not None:
            await finish_request(request, ticket, prepared, record)


async def _stream_events(
    request: Request,
    service: TranscriptionService,
    prepared: PreparedAudio,
    options: TranscriptionOptions,
    ticket: Ticket,
    reply: MistralReply,
    record: RequestRecord,
) -> AsyncIterator[str]:
    """The dialect's events (dialect.mistral_events) as SSE; failures after the 200 are an
    event. The request is counted when the stream ends, with the status its events carried."""
    status = 499  # unless the stream gets to its end or to an error event
    try:
        results = until_client_leaves(request, service.segment_results(prepared, options))
        async for event_type, payload in mistral_events(
            service, prepared, options, reply, results, on_result=lambda _: ticket.segment_done()
        ):
            yield render.format_event(event_type, payload)
        status = 200
    except ClientDisconnectedError:
        logger.info("[%s] client left mid-stream", request.state.request_id)
    except GatewayError as exc:
        logger.warning("[%s] stream failed: %s", request.state.request_id, exc.message)
        status = exc.status_code
        yield render.error_event(
            mistral_error_body(exc.message, exc.error_type, param=exc.param, code=exc.code)
        )
    except Exception:
        logger.exception("[%s] stream failed", request.state.request_id)
        status = 500
        yield render.error_event(
            mistral_error_body("Internal server error", "server_error", code="internal_error")
        )
    finally:
        ticket.release()
        record.finish(status)
