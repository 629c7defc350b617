"""Request -> (validated parameters, audio bytes).

Three ways in: a multipart `file` (as the OpenAI SDK sends it), a `file_url` (https URL fetched
by our guarded fetcher, or inline data URL / base64), or a JSON body with `file_url` / `audio`.
Byte limits are enforced while the body streams (BodySizeLimitMiddleware: `max_upload_bytes`
for multipart, the lower `max_inline_bytes` for a body that cannot carry a spooled file) and,
for a multipart text field, by the form parser's part cap; base64 is checked from its encoded
length before decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from voxtral_gateway.engine_calls import Task
from voxtral_gateway.errors import (
    InvalidRequestError,
    UrlRejectedError,
    describe_validation_errors,
)
from voxtral_gateway.pipeline.decode import AudioSource
from voxtral_gateway.pipeline.fetch import fetch_audio
from voxtral_gateway.pipeline.inline import (
    classify_file_url,
    decode_inline_audio,
    inline_too_large,
)
from voxtral_gateway.protocol import TRANSCRIPTION_ONLY_FIELDS, TranscriptionRequest
from voxtral_gateway.settings import Settings

_FORM_FIELDS_MAX = 64
RequestModel = TypeVar("RequestModel", bound=BaseModel)


@dataclass(frozen=True)
class IngestedRequest:
    params: TranscriptionRequest
    upload: BinaryIO | None
    """A multipart file, in its spooled file (on disk past 1 MB), never read whole; closed
    with the request (Request.close). The audio itself: `resolve_audio_source`."""


async def read_transcription_request(
    request: Request, settings: Settings, *, task: Task = "transcribe"
) -> IngestedRequest:
    """OpenAI's parameters and the upload; a translation takes OpenAI's smaller parameter set
    (no `language`, `include`, `timestamp_granularities`: the text is English)."""
    fields, upload = await read_fields(request, settings)
    if task == "translate":
        _refuse_transcription_only(fields)
    return IngestedRequest(params=validate_fields(fields), upload=upload.file if upload else None)


async def read_fields(
    request: Request, settings: Settings
) -> tuple[dict[str, Any], UploadFile | None]:
    """The body's fields, unvalidated (each dialect has its own model), and the upload if any."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(request, settings)
    if content_type == "application/json":
        return await _read_json(request), None
    raise InvalidRequestError(
        "Content-Type must be multipart/form-data or application/json.",
        code="unsupported_content_type",
    )


async def _read_form(
    request: Request, settings: Settings
) -> tuple[dict[str, Any], UploadFile | None]:
    try:
        form = await request.form(
            max_files=1,
            max_fields=_FORM_FIELDS_MAX,
            # Text fields are held in memory (`file_url`/`audio` inline), unlike the file.
            max_part_size=settings.limits.max_inline_bytes,
        )
    except (MultiPartException, HTTPException) as exc:
        # Starlette reports its own limits as a 400 HTTPException inside an app.
        message = exc.message if isinstance(exc, MultiPartException) else str(exc.detail)
        if message.startswith(("Part exceeded", "Field exceeded")):
            raise inline_too_large(settings.limits.max_inline_bytes) from None
        raise InvalidRequestError(
            f"Malformed multipart body: {message}", code="invalid_body"
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
    """Fields -> OpenAI's request model; the first problem becomes a 400 naming it."""
    return validate_model(TranscriptionRequest, fields)


def validate_model(model: type[RequestModel], fields: dict[str, Any]) -> RequestModel:
    """Fields -> a dialect's request model; the first problem becomes a 400 naming the
    parameter (never echoing the client's value)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        message, param = describe_validation_errors(exc.errors())
        raise InvalidRequestError(message, param=param, code="invalid_parameter") from None


async def resolve_audio_source(
    *, upload: BinaryIO | None, file_url: str | None, audio: str | None, settings: Settings
) -> AudioSource:
    """The audio of every door and dialect: an uploaded file, inline base64 / data URL (in
    `audio` or `file_url`), or an https URL fetched under the SSRF guard when fetching is on."""
    given = [upload is not None, bool(file_url), bool(audio)]
    if sum(given) != 1:
        raise InvalidRequestError(
            "Send exactly one of 'file' (multipart), 'file_url' or 'audio'.", param="file"
        )
    if upload is not None:
        return upload
    if audio:
        return decode_inline_audio(audio, settings.limits, param="audio")
    assert file_url is not None
    if classify_file_url(file_url) == "inline":
        return decode_inline_audio(file_url, settings.limits)
    if not settings.fetch.enabled:
        raise UrlRejectedError(
            "Fetching audio by URL is disabled on this server.", param="file_url"
        )
    return await fetch_audio(file_url, settings.fetch, settings.limits)
