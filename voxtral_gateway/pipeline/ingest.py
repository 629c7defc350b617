"""Request -> (validated parameters, audio bytes).

Three ways in: a multipart `file` (as the OpenAI SDK sends it), a `file_url` (https URL fetched
by our guarded fetcher, or inline data URL / base64), or a JSON body with `file_url` / `audio`.
Byte limits are enforced while the body streams (BodySizeLimitMiddleware) and, for inline
base64, from the encoded length before decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from voxtral_gateway.engine_calls import Task
from voxtral_gateway.errors import InvalidRequestError, UrlRejectedError
from voxtral_gateway.pipeline.decode import AudioSource
from voxtral_gateway.pipeline.fetch import fetch_audio
from voxtral_gateway.pipeline.inline import classify_file_url, decode_inline_audio
from voxtral_gateway.protocol import TRANSCRIPTION_ONLY_FIELDS, TranscriptionRequest
from voxtral_gateway.settings import Settings

_FORM_FIELDS_MAX = 64


@dataclass(frozen=True)
class IngestedRequest:
    params: TranscriptionRequest
    source: AudioSource
    """The audio: an upload stays in its spooled file (on disk past 1 MB), never read whole."""


async def read_transcription_request(
    request: Request, settings: Settings, *, task: Task = "transcribe"
) -> IngestedRequest:
    """The request's parameters and audio; a translation takes OpenAI's smaller parameter set
    (no `language`, `include`, `timestamp_granularities`: the text is English)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload: UploadFile | None = None
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields, upload = await _read_form(request, settings)
    elif content_type == "application/json":
        fields = await _read_json(request)
    else:
        raise InvalidRequestError(
            "Content-Type must be multipart/form-data or application/json.",
            code="unsupported_content_type",
        )
    if task == "translate":
        _refuse_transcription_only(fields)
    params = validate_fields(fields)
    source = await _audio_source(params, upload, settings)
    return IngestedRequest(params=params, source=source)


async def _read_form(
    request: Request, settings: Settings
) -> tuple[dict[str, Any], UploadFile | None]:
    try:
        form = await request.form(
            max_files=1,
            max_fields=_FORM_FIELDS_MAX,
            max_part_size=settings.limits.max_base64_chars + 1024,
        )
    except MultiPartException as exc:
        raise InvalidRequestError(
            f"Malformed multipart body: {exc.message}", code="invalid_body"
        ) from exc
    fields: dict[str, Any] = {}
    upload: UploadFile | None = None
    for key in form:
        values = form.getlist(key)
        if key == "file":
            if len(values) != 1 or not isinstance(values[0], UploadFile):
                raise InvalidRequestError("'file' must be one uploaded file.", param="file")
            upload = values[0]
            continue
        if any(isinstance(v, UploadFile) for v in values):
            raise InvalidRequestError(f"Unexpected file in field {key!r}.", param=key)
        fields[key] = values if (key.endswith("[]") or len(values) > 1) else values[0]
    return fields, upload


async def _read_json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise InvalidRequestError("The body is not valid JSON.", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("The JSON body must be an object.", code="invalid_json")
    return body


def _refuse_transcription_only(fields: dict[str, Any]) -> None:
    for key in fields:
        name = key.removesuffix("[]")
        if name in TRANSCRIPTION_ONLY_FIELDS:
            raise InvalidRequestError(
                f"Unknown parameter {name!r} for translations.",
                param=name,
                code="invalid_parameter",
            )


def validate_fields(fields: dict[str, Any]) -> TranscriptionRequest:
    """Fields -> request model; the first problem becomes a 400 naming the parameter."""
    try:
        return TranscriptionRequest.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        kind = first.get("type", "")
        if kind == "extra_forbidden":
            message = f"Unknown parameter {param!r}."
        else:
            # Name the parameter and the rule; never echo the client's value.
            message = f"Invalid parameter {param!r}: {first['msg']}."
        raise InvalidRequestError(message, param=param, code="invalid_parameter") from None


async def _audio_source(
    params: TranscriptionRequest, upload: UploadFile | None, settings: Settings
) -> AudioSource:
    sources = [s for s in (upload, params.file_url, params.audio) if s]
    if len(sources) != 1:
        raise InvalidRequestError(
            "Send exactly one of 'file' (multipart), 'file_url' or 'audio'.", param="file"
        )
    if upload is not None:
        return upload.file  # closed with the request (Request.close)
    if params.audio:
        return decode_inline_audio(params.audio, settings.limits, param="audio")
    assert params.file_url is not None
    if classify_file_url(params.file_url) == "inline":
        return decode_inline_audio(params.file_url, settings.limits)
    if not settings.fetch.enabled:
        raise UrlRejectedError(
            "Fetching audio by URL is disabled on this server.", param="file_url"
        )
    return await fetch_audio(params.file_url, settings.fetch, settings.limits)
