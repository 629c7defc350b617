"""`Transcript` -> the body of each OpenAI response format."""

from __future__ import annotations

import math
from typing import Any

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


def _srt_text(segment: SegmentResult) -> str:
    """The cue text, after a `Speaker: ` prefix when speakers were asked for."""
    return f"{segment.speaker}: {segment.text}" if segment.speaker else segment.text


def _vtt_text(segment: SegmentResult) -> str:
    """The cue text in a `<v Speaker>` voice span when speakers were asked for."""
    return f"<v {segment.speaker}>{segment.text}" if segment.speaker else segment.text


def render_srt(transcript: Transcript) -> str:
    blocks = [
        f"{number}\n"
        f"{format_timestamp(s.start_s, decimal_marker=',')} --> "
        f"{format_timestamp(s.end_s, decimal_marker=',')}\n{_srt_text(s)}\n"
        for number, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks)


def render_vtt(transcript: Transcript) -> str:
    cues = [
        f"{format_timestamp(s.start_s, decimal_marker='.')} --> "
        f"{format_timestamp(s.end_s, decimal_marker='.')}\n{_vtt_text(s)}\n"
        for s in transcript.segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def render_verbose_json(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's `TranscriptionVerbose`; per-token statistics are not available from the engine."""
    return {
        "task": "transcribe",
        "language": transcript.language,
        "duration": round(transcript.duration_s, 3),
        "text": transcript.text,
        "segments": [
            {
                "id": number,
                "seek": round(s.start_s * 100),
                "start": round(s.start_s, 3),
                "end": round(s.end_s, 3),
                "text": s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
                **({"speaker": s.speaker} if s.speaker else {}),
            }
            for number, s in enumerate(transcript.segments)
        ],
        "usage": usage(transcript),
    }


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


def render_transcript(
    transcript: Transcript, response_format: ResponseFormat
) -> str | dict[str, Any]:
    """The response body: a dict for the JSON formats, text for the rest."""
    match response_format:
        case "json":
            return {"text": transcript.text, "usage": usage(transcript)}
        case "verbose_json":
            return render_verbose_json(transcript)
        case "diarized_json":
            return render_diarized_json(transcript)
        case "text":
            return transcript.text + "\n" if transcript.text else ""
        case "srt":
            return render_srt(transcript)
        case "vtt":
            return render_vtt(transcript)
