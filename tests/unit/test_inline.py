"""Inline audio: data URLs and bare base64 decoded with length checks first; file_url triage."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from mistral_common.protocol.instruct.chunk import AudioURLChunk, AudioURLType

from voxtral_gateway.errors import AudioLimitError, InvalidRequestError, UrlRejectedError
from voxtral_gateway.pipeline.inline import classify_file_url, decode_inline_audio
from voxtral_gateway.settings import LimitSettings

WAV_HEADER = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
ENCODED = base64.b64encode(WAV_HEADER).decode()
LIMITS = LimitSettings()


@pytest.mark.parametrize(
    "value",
    [
        f"data:audio/wav;base64,{ENCODED}",
        f"DATA:Audio/WAV;base64,{ENCODED}",
        f"data:audio/ogg;codecs=opus;base64,{ENCODED}",
        f"data:application/octet-stream;base64,{ENCODED}",
        ENCODED,
        ENCODED.rstrip("="),
        f"  {ENCODED[:12]}\n{ENCODED[12:]}\r\n",
    ],
)
def test_inline_forms_decode_to_the_file_bytes(value: str) -> None:
    assert decode_inline_audio(value, LIMITS) == WAV_HEADER


@pytest.mark.parametrize(
    "value",
    [
        f"data:text/html;base64,{ENCODED}",
        f"data:audio/wav,{ENCODED}",
        "data:audio/wav;base64,",
        "not base64 at all!",
        ENCODED[:-3] + "*==",
        "A",
        "   ",
        "https://audio.example/a.wav",
    ],
)
def test_malformed_inline_audio_is_a_400(value: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        decode_inline_audio(value, LIMITS)
    assert (refused.value.status_code, refused.value.code) == (400, "invalid_inline_audio")


def test_length_is_checked_before_decoding() -> None:
    # Invalid base64 one character past the cap: decoding first would report "not base64".
    limits = LimitSettings(max_inline_bytes=1000)
    with pytest.raises(AudioLimitError) as refused:
        decode_inline_audio("!" * 1001, limits)
    assert refused.value.status_code == 413
    with pytest.raises(InvalidRequestError, match="not valid base64"):
        decode_inline_audio("!" * 1000, limits)


def test_decoded_size_is_bounded_by_the_upload_cap_before_decoding() -> None:
    limits = LimitSettings(max_upload_bytes=len(WAV_HEADER) - 1)
    with pytest.raises(AudioLimitError, match="decodes to more than"):
        decode_inline_audio(ENCODED, limits)
    assert decode_inline_audio(ENCODED, LimitSettings(max_upload_bytes=len(WAV_HEADER)))


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("https://audio.example/a.wav", "remote"),
        ("HTTP://audio.example/a.wav", "remote"),
        (f"data:audio/wav;base64,{ENCODED}", "inline"),
        (ENCODED, "inline"),
        ("//uQxAAAAAAAAAAAAAAAAAAAAAAASW5mbwAAAA8AAAAC", "inline"),
    ],
)
def test_file_url_is_classified_without_touching_the_filesystem(value: str, kind: str) -> None:
    assert classify_file_url(value) == kind


@pytest.mark.parametrize(
    "value",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "ftp://audio.example/a.wav",
        "gopher://audio.example/",
        "s3://bucket/a.wav",
        "C:\\audio\\a.wav",
    ],
)
def test_other_schemes_are_refused(value: str) -> None:
    with pytest.raises(UrlRejectedError):
        classify_file_url(value)


def test_a_local_path_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.wav"
    secret.write_bytes(WAV_HEADER)
    # mistral-common's own triage would call this a local file and its loader would read it.
    assert AudioURLChunk(audio_url=str(secret)).get_url_type() is AudioURLType.file
    with pytest.raises(UrlRejectedError):
        classify_file_url(secret.as_uri())
    # Ours treats it as (bad) base64: whatever comes back, it is not the file's bytes.
    assert classify_file_url(str(secret)) == "inline"
    try:
        data = decode_inline_audio(str(secret), LIMITS)
    except InvalidRequestError:
        data = b""
    assert data != WAV_HEADER
