"""`Transcript` -> the body of each OpenAI response format."""

from __future__ import annotations

import math
import zlib
from typing import Any

from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.protocol import ResponseFormat

MEDIA_TYPES: dict[ResponseFormat, str] = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def usage(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's duration usage: whole seconds, rounded up (a 0.2 s clip bills 1 s)."""
    return {"type": "duration", "seconds": math.ceil(transcript.duration_s)}


def format_timestamp(seconds: float, *, decimal_marker: str) -> str:
    """`HH:MM:SS<marker>mmm`, rounded to whole milliseconds once, then split with integers."""
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def render_srt(transcript: Transcript) -> str:
    blocks = [
        f"{number}\n"
        f"{format_timestamp(s.start_s, decimal_marker=',')} --> "
        f"{format_timestamp(s.end_s, decimal_marker=',')}\n{s.text}\n"
        for number, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks)


def render_vtt(transcript: Transcript) -> str:
    cues = [
        f"{format_timestamp(s.start_s, decimal_marker='.')} --> "
        f"{format_timestamp(s.end_s, decimal_marker='.')}\n{s.text}\n"
        for s in transcript.segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def render_verbose_json(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's `TranscriptionVerbose` (or `TranslationVerbose`), measurements only: a field
    nothing measured for this request (the language without a detector, token statistics from
    an engine that does not report them, no_speech_prob without VAD) is left out, never 0.0."""
    body: dict[str, Any] = {"task": transcript.task}
    if transcript.language:
        body["language"] = transcript.language
    body.update(
        duration=round(transcript.duration_s, 3),
        text=transcript.text,
        segments=[_verbose_segment(number, s) for number, s in enumerate(transcript.segments)],
    )
    if transcript.task == "transcribe":
        body["usage"] = usage(transcript)
    return body


def _verbose_segment(number: int, s: SegmentResult) -> dict[str, Any]:
    segment: dict[str, Any] = {
        "id": number,
        "seek": round(s.start_s * 100),
        "start": round(s.start_s, 3),
        "end": round(s.end_s, 3),
        "text": s.text,
        "compression_ratio": compression_ratio(s.text),
    }
    optional = {
        "language": s.language,
        "tokens": list(s.tokens) if s.tokens is not None else None,
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "no_speech_prob": None if s.no_speech_prob is None else round(s.no_speech_prob, 4),
    }
    segment.update({key: value for key, value in optional.items() if value is not None})
    return segment


def compression_ratio(text: str) -> float:
    """Whisper's repetition gauge: UTF-8 length over zlib-compressed length (high = looping)."""
    raw = text.encode("utf-8")
    return round(len(raw) / len(zlib.compress(raw)), 4) if raw else 0.0


def render_transcript(
    transcript: Transcript, response_format: ResponseFormat
) -> str | dict[str, Any]:
    """The response body: a dict for the JSON formats, text for the rest."""
    match response_format:
        case "json" if transcript.task == "translate":
            return {"text": transcript.text}  # OpenAI's Translation: no usage
        case "json":
            return {"text": transcript.text, "usage": usage(transcript)}
        case "verbose_json":
            return render_verbose_json(transcript)
        case "text":
            return transcript.text + "\n" if transcript.text else ""
        case "srt":
            return render_srt(transcript)
        case "vtt":
            return render_vtt(transcript)
