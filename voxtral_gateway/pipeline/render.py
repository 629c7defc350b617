"""`Transcript` -> the body of each OpenAI response format."""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection
from typing import Any

from voxtral_gateway.pipeline.cues import Cue, CueLimits, build_cues
from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.protocol import ResponseFormat

MEDIA_TYPES: dict[ResponseFormat, str] = {
    "json": "application/json",
    "verbose_json": "application/json",
    "diarized_json": "application/json",
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


def _srt_text(cue: Cue) -> str:
    """The cue text, after a `Speaker: ` prefix when speakers were asked for."""
    return f"{cue.speaker}: {cue.text}" if cue.speaker else cue.text


def _vtt_text(cue: Cue) -> str:
    """The cue text in a `<v Speaker>` voice span when speakers were asked for."""
    return f"<v {cue.speaker}>{cue.text}" if cue.speaker else cue.text


def render_srt(transcript: Transcript, limits: CueLimits | None = None) -> str:
    blocks = [
        f"{number}\n"
        f"{format_timestamp(c.start_s, decimal_marker=',')} --> "
        f"{format_timestamp(c.end_s, decimal_marker=',')}\n{_srt_text(c)}\n"
        for number, c in enumerate(build_cues(transcript, limits or CueLimits()), start=1)
    ]
    return "\n".join(blocks)


def render_vtt(transcript: Transcript, limits: CueLimits | None = None) -> str:
    cues = [
        f"{format_timestamp(c.start_s, decimal_marker='.')} --> "
        f"{format_timestamp(c.end_s, decimal_marker='.')}\n{_vtt_text(c)}\n"
        for c in build_cues(transcript, limits or CueLimits())
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def render_verbose_json(
    transcript: Transcript, granularities: Collection[str] = ()
) -> dict[str, Any]:
    """OpenAI's `TranscriptionVerbose` (or `TranslationVerbose`), measurements only: a field
    nothing measured for this request (the language without a detector, token statistics from
    an engine that does not report them, no_speech_prob without VAD) is left out, never 0.0.

    `segments` unless only `word` was asked for; `words` (file time) when `word` was."""
    body: dict[str, Any] = {"task": transcript.task}
    if transcript.language:
        body["language"] = transcript.language
    body.update(
        duration=round(transcript.duration_s, 3),
        text=transcript.text,
        segments=[_verbose_segment(number, s) for number, s in enumerate(transcript.segments)],
    )
    if "word" in granularities:
        body["words"] = [
            {"word": w.word, "start": w.start_s, "end": w.end_s}
            for s in transcript.segments
            for w in s.words
        ]
        if "segment" not in granularities:
            del body["segments"]
    if transcript.task == "transcribe":
        body["usage"] = usage(transcript)
    return body


def diarized_segment(segment: SegmentResult, number: int) -> dict[str, Any]:
    """OpenAI's `TranscriptionDiarizedSegment` (also the `transcript.text.segment` event)."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{number}",
        "start": round(segment.start_s, 3),
        "end": round(segment.end_s, 3),
        "text": segment.text,
        "speaker": segment.speaker or "A",
    }


def render_diarized_json(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's `TranscriptionDiarized`: the text plus segments labelled by speaker."""
    return {
        "task": "transcribe",
        "duration": round(transcript.duration_s, 3),
        "text": transcript.text,
        "segments": [diarized_segment(s, n) for n, s in enumerate(transcript.segments)],
        "usage": usage(transcript),
    }


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
        "speaker": s.speaker,
    }
    segment.update({key: value for key, value in optional.items() if value is not None})
    return segment


def compression_ratio(text: str) -> float:
    """Whisper's repetition gauge: UTF-8 length over zlib-compressed length (high = looping)."""
    raw = text.encode("utf-8")
    return round(len(raw) / len(zlib.compress(raw)), 4) if raw else 0.0


def render_transcript(
    transcript: Transcript,
    response_format: ResponseFormat,
    *,
    granularities: Collection[str] = (),
    cue_limits: CueLimits | None = None,
) -> str | dict[str, Any]:
    """The response body: a dict for the JSON formats, text for the rest."""
    match response_format:
        case "json" if transcript.task == "translate":
            return {"text": transcript.text}  # OpenAI's Translation: no usage
        case "json":
            return {"text": transcript.text, "usage": usage(transcript)}
        case "verbose_json":
            return render_verbose_json(transcript, granularities)
        case "diarized_json":
            return render_diarized_json(transcript)
        case "text":
            return transcript.text + "\n" if transcript.text else ""
        case "srt":
            return render_srt(transcript, cue_limits)
        case "vtt":
            return render_vtt(transcript, cue_limits)
