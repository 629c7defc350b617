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
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask

from voxtral_gateway.admission import Ticket
from voxtral_gateway.deps import AudioChargeDep, RuntimeDep, SettingsDep
from voxtral_gateway.errors import GatewayError, InvalidRequestError
from voxtral_gateway.metrics import RequestRecord
from voxtral_gateway.mistral import render
from voxtral_gateway.mistral.protocol import (
    MISTRAL_PREFIX,
    MistralTranscriptionRequest,
    mistral_error_body,
)
from voxtral_gateway.pipeline.ingest import read_fields
from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.pipeline.stitch import clean_text
from voxtral_gateway.pipeline.token_stream import TextDelta
from voxtral_gateway.routes.lifecycle import (
    ClientDisconnectedError,
    cancel_on_disconnect,
    finish_request,
    server_timing,
    until_client_leaves,
)
from voxtral_gateway.service import PreparedAudio, TranscriptionOptions, TranscriptionService
from voxtral_gateway.settings import Settings

logger = logging.getLogger(__name__)

router = APIRouter(prefix=MISTRAL_PREFIX)


def _request_body_schema() -> dict[str, Any]:
    """Document the multipart body (parsed by hand, so FastAPI cannot infer it)."""
    fields = MistralTranscriptionRequest.model_json_schema()
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


def validate_mistral_fields(fields: dict[str, object]) -> MistralTranscriptionRequest:
    """Fields -> request model; the first problem becomes a 400 naming the parameter."""
    try:
        return MistralTranscriptionRequest.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        if first.get("type") == "extra_forbidden":
            message = f"Unknown parameter {param!r}."
        else:
            # Name the parameter and the rule; never echo the client's value.
            message = f"Invalid parameter {param!r}: {first['msg'].removeprefix('Value error, ')}."
        raise InvalidRequestError(message, param=param, code="invalid_parameter") from None


def context_bias_report(
    params: MistralTranscriptionRequest, settings: Settings
) -> render.ContextBiasReport | None:
    if not params.context_bias:
        return None
    applied_via = "prompt" if settings.context_bias == "prompt" else None
    return render.ContextBiasReport(tuple(params.context_bias), applied_via)


def options_from(params: MistralTranscriptionRequest, settings: Settings) -> TranscriptionOptions:
    return TranscriptionOptions(
        language=params.language,
        prompt=params.context_prompt() if settings.context_bias == "prompt" else None,
        temperature=params.temperature,
        use_vad=settings.vad.enabled,
        count_tokens=True,  # Mistral's `usage` reports the engine's tokens
        stream_tokens=params.stream,
    )


def _error_response(exc: GatewayError) -> JSONResponse:
    body = mistral_error_body(exc.message, exc.error_type, param=exc.param, code=exc.code)
    return JSONResponse(body, exc.status_code, headers=exc.headers)


@router.post("/v1/audio/transcriptions", response_model=None, openapi_extra=_request_body_schema())
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
        source = await service.audio_source(
            upload=upload.file if upload else None, file_url=params.file_url
        )
        read_s = time.perf_counter() - started
        options = options_from(params, settings)
        prepared = await service.prepare(source, options, ticket.add_chunk)
        timing = {"read": read_s, "decode": prepared.decode_s, "vad": prepared.vad_s}
        reply = _Reply(params, params.language or settings.default_language, settings)
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


class _Reply:
    """What the response says besides the transcript: model, language, segments, bias report."""

    def __init__(
        self, params: MistralTranscriptionRequest, language: str | None, settings: Settings
    ) -> None:
        self.params = params
        self.language = language
        """The client's or the configured language; None (JSON null) when nobody named one."""
        self.context_bias = context_bias_report(params, settings)

    def body(self, transcript: Transcript) -> dict[str, Any]:
        return render.render_response(
            transcript,
            model=self.params.model,
            language=self.language,
            include_segments=self.params.wants_segments,
            context_bias=self.context_bias,
        )


async def _stream_events(
    request: Request,
    service: TranscriptionService,
    prepared: PreparedAudio,
    options: TranscriptionOptions,
    ticket: Ticket,
    reply: _Reply,
    record: RequestRecord,
) -> AsyncIterator[str]:
    """Language, then the service's text deltas in file order (the engine's token deltas,
    adding up to the done text) with a timed segment after each segment's text, if asked,
    then `transcription.done` with the whole response; failures after the 200 are an event.
    The request is counted when the stream ends, with the status its events carried."""
    status = 499  # unless the stream gets to its end or to an error event
    try:
        if reply.language:
            yield render.language_event(reply.language)
        results = until_client_leaves(request, service.segment_results(prepared, options))
        async for item in service.text_stream(
            prepared, options, results=results, on_result=lambda _: ticket.segment_done()
        ):
            if isinstance(item, TextDelta):
                yield render.text_delta_event(item.text)
            elif isinstance(item, SegmentResult):
                text = clean_text(item.text)
                if text and reply.params.wants_segments:
                    yield render.segment_event(
                        SegmentResult(item.index, item.start_s, item.end_s, text)
                    )
            else:
                yield render.done_event(reply.body(item))
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
