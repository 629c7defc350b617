"""Inline audio (`data:audio/...;base64,` URL or bare base64) -> file bytes, and `file_url` triage.

The wire shapes are mistral-common's chunk types (`AudioURLChunk` for `file_url`, `AudioChunk`
for `audio`), but we never call their loaders: `AudioURLChunk.get_url_type()` stats the string
as a local path and `Audio.from_url()` downloads any URL. Remote URLs go to our fetcher, local
paths and `file:` URIs are refused, and base64 is size-checked from its encoded length before a
single byte is decoded.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from mistral_common.protocol.instruct.chunk import AudioChunk, AudioURLChunk, AudioURLType
from mistral_common.utils.data_url import maybe_strip_base64_data_url_prefix
from pydantic import ValidationError

from voxtral_gateway.errors import AudioLimitError, InvalidRequestError, UrlRejectedError
from voxtral_gateway.settings import LimitSettings

FileUrlKind = Literal["remote", "inline"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_DATA_URL_HEADER = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*);base64,", re.IGNORECASE)
_ACCEPTED_MEDIA_TYPES = ("audio/", "video/", "application/octet-stream", "application/ogg")
_ASCII_WHITESPACE = re.compile(rb"[ \t\r\n\f\v]+")


def classify_file_url(value: str) -> FileUrlKind:
    """Say whether `file_url` is a remote URL for the fetcher or inline base64 audio.

    Refuses `file:` URIs and every other scheme. A local path is never looked up: anything
    without a scheme is treated as base64 and fails base64 validation if it isn't.
    """
    chunk = _audio_url_chunk(value)
    match _url_type(chunk.url):
        case AudioURLType.url:
            return "remote"
        case AudioURLType.base64:
            return "inline"
        case _:
            raise UrlRejectedError("Local files and file: URLs are never read.", param="file_url")


def decode_inline_audio(value: str, limits: LimitSettings, *, param: str = "file_url") -> bytes:
    """Return the file bytes of a base64 data URL or bare base64 string.

    The length is checked before anything else (413 past `limits.max_inline_bytes`, or when
    the decoded size would pass `limits.max_upload_bytes`); bad base64 or a non-audio data
    URL is a 400. Whitespace (line-wrapped base64) and missing `=` padding are tolerated.
    """
    if len(value) > limits.max_inline_bytes:
        raise inline_too_large(limits.max_inline_bytes, param)
    chunk = _audio_chunk(value, param)
    text = chunk.input_audio if isinstance(chunk.input_audio, str) else ""
    if _url_type(text) is not AudioURLType.base64:
        raise _invalid_inline(
            "Inline audio must be base64 or a data:audio/...;base64, URL.", param=param
        )
    payload = _strip_data_url(text, param)
    try:
        encoded = _ASCII_WHITESPACE.sub(b"", payload.encode("ascii"))
    except UnicodeEncodeError as exc:
        raise _invalid_inline("Inline audio is not valid base64.", param=param) from exc
    if len(encoded) % 4 == 1:
        raise _invalid_inline("Inline audio is not valid base64.", param=param)
    decoded_bytes_upper_bound = (len(encoded) + 3) // 4 * 3
    if decoded_bytes_upper_bound > limits.max_upload_bytes + 2:
        raise AudioLimitError(
            f"Inline audio decodes to more than {limits.max_upload_bytes} bytes.", param=param
        )
    encoded = encoded.rstrip(b"=")
    try:
        data = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise _invalid_inline("Inline audio is not valid base64.", param=param) from exc
    if not data:
        raise _invalid_inline("Inline audio is empty.", param=param)
    if len(data) > limits.max_upload_bytes:
        raise AudioLimitError(
            f"Inline audio decodes to more than {limits.max_upload_bytes} bytes.", param=param
        )
    return data


def inline_too_large(max_bytes: int, param: str = "audio") -> AudioLimitError:
    """The 413 for inline audio past `max_inline_bytes`, saying how to send more."""
    return AudioLimitError(
        f"Inline audio (a JSON or form-encoded body, or a multipart text field) is held in "
        f"memory: at most {max_bytes} bytes. Upload larger audio as a multipart 'file'.",
        param=param,
        code="inline_audio_too_large",
    )


def _url_type(url: str) -> AudioURLType:
    """mistral-common's `get_url_type()` without its filesystem lookup (never `file`)."""
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme in ("http", "https"):
        return AudioURLType.url
    if scheme == "data":
        return AudioURLType.base64
    if scheme == "file":
        return AudioURLType.file_uri
    if scheme:
        # Base64 has no ':', so any "word:" prefix is a URL of a scheme we refuse.
        raise UrlRejectedError(
            f"URL scheme {scheme!r} is not supported; use https.", param="file_url"
        )
    return AudioURLType.base64


def _audio_url_chunk(value: str) -> AudioURLChunk:
    try:
        return AudioURLChunk(audio_url=value.strip())
    except ValidationError as exc:
        raise _invalid_inline("'file_url' must be a string.", param="file_url") from exc


def _audio_chunk(value: str, param: str) -> AudioChunk:
    try:
        return AudioChunk(input_audio=value.strip())
    except ValidationError as exc:
        raise _invalid_inline("Inline audio is empty.", param=param) from exc


def _strip_data_url(text: str, param: str) -> str:
    if text[:5].lower() != "data:":
        return text
    header = _DATA_URL_HEADER.match(text)
    media_type = header.group(1).strip().lower() if header else ""
    if header is None or not media_type.startswith(_ACCEPTED_MEDIA_TYPES):
        raise _invalid_inline(
            "A data URL must look like data:audio/<format>;base64,<payload>.", param=param
        )
    try:
        # mistral-common matches a lower-case "data:" only; the header was checked above.
        return maybe_strip_base64_data_url_prefix("data:" + text[5:])
    except ValueError as exc:
        raise _invalid_inline("The data URL is malformed.", param=param) from exc


def _invalid_inline(message: str, *, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_inline_audio")
