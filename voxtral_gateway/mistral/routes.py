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
from dataclasses import replace
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
from voxtral_gateway.pipeline.speaker_encoder import SpeakersUnavailableError
from voxtral_gateway.pipeline.speakers import (
    SpeakerRequest,
    SpeakerStage,
    read_named_references,
)
from voxtral_gateway.pipeline.stitch import clean_text
from voxtral_gateway.pipeline.word_timing import with_word_timing
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


async def options_from(
    params: MistralTranscriptionRequest, service: TranscriptionService
) -> TranscriptionOptions:
    settings = service.settings
    options = TranscriptionOptions(
        # The same check as OpenAI's door: 400 for a language the served model lacks.
        language=await service.checked_language(params.language),
        prompt=params.context_prompt() if settings.context_bias == "prompt" else None,
        temperature=params.temperature,
        use_vad=settings.vad.enabled,
        count_tokens=True,  # Mistral's `usage` reports the engine's tokens
        detailed=True,  # Mistral's `language`: the detected one when nobody named one
    )
    return with_word_timing(
        options, words=params.wants_words, cues=False, subtitles=settings.subtitles
    )


async def speakers_from(
    params: MistralTranscriptionRequest, settings: Settings, stage: SpeakerStage | None
) -> SpeakerRequest | None:
    """`diarize=true` -> the speaker stage; `speaker_references` name its clusters."""
    if not params.diarize:
        return None
    if stage is None or not stage.is_available:
        raise SpeakersUnavailableError(param="diarize")
    references = params.speaker_references or {}
    return await read_named_references(references, settings, param="speaker_references")


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
        options = await options_from(params, service)
        source = await service.audio_source(
            upload=upload.file if upload else None, file_url=params.file_url
        )
        read_s = time.perf_counter() - started
        options = await options_from(params, service)
        options = replace(
            options, speakers=await speakers_from(params, settings, runtime.speaker_stage)
        )
        prepared = await service.prepare(source, options, ticket.add_chunk)
        timing = {"read": read_s, "decode": prepared.decode_s, "vad": prepared.vad_s}
        reply = _Reply(params, service.language_for(options), settings)
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


class _Reply:
    """What the response says besides the transcript: model, language, segments, bias report."""

    def __init__(
        self, params: MistralTranscriptionRequest, language: str | None, settings: Settings
    ) -> None:
        self.params = params
        self.language = language
        """The client's or the configured language, known before any audio is heard; None:
        detected per segment (or unknown)."""
        self.context_bias = context_bias_report(params, settings)

    def body(self, transcript: Transcript) -> dict[str, Any]:
        return render.render_response(
            transcript,
            model=self.params.model,
            # Named, or detected as verbose_json reports it; None (JSON null) when unknown.
            language=transcript.language,
            include_segments=self.params.wants_segments,
            words=self.params.wants_words,
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
    """Language (at once when named, else with the first segment that tells it), then a text
    delta (and a timed segment, if asked) per segment in file order, then `transcription.done`
    with the whole response; failures after the 200 are an event. The request is counted when
    the stream ends, with the status its events carried."""
    results: list[SegmentResult] = []
    status = 499  # unless the stream gets to its end or to an error event
    language_told = reply.language is not None
    try:
        if reply.language:
            yield render.language_event(reply.language)
        async for result in until_client_leaves(
            request, service.segment_results(prepared, options)
        ):
            ticket.segment_done()
            if not language_told and result.language:
                # The first detected language; `transcription.done` has the request's (the
                # one spoken longest), as verbose_json does.
                yield render.language_event(result.language)
                language_told = True
            text = clean_text(result.text)
            if text:
                # Labelled as it completes; the done event's segments keep these labels.
                result = await service.label_speaker(prepared, result)
            results.append(result)
            if not text:
                continue
            # Deltas concatenate to the done text: all but the first start with a space.
            prefix = " " if any(clean_text(r.text) for r in results[:-1]) else ""
            yield render.text_delta_event(prefix + text)
            if reply.params.wants_words:
                for word in result.words:
                    yield render.segment_event(render.word_body(word, result.speaker))
            elif reply.params.wants_segments:
                yield render.segment_event(
                    render.segment_body(replace(result, text=text, usage=None))
                )
        yield render.done_event(reply.body(service.finish(prepared, results, options)))
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
