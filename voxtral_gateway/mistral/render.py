"""`Transcript` -> Mistral's response body and its `transcription.*` stream events.

The SDK's `TranscriptionResponse` needs `model`, `text`, `usage` and `language` (null allowed);
`segments` only when timestamps were asked for. Its stream parser (`EventStream`, no sentinel)
reads `event:` and `data:` lines into `TranscriptionStreamEvents`, so every event names its
type twice and there is no `[DONE]` line: the stream simply ends after `transcription.done`.
The SDK's schema has no word list (`TimestampGranularity` is `segment` | `word`, and the only
timed list is `segments` of `TranscriptionSegmentChunk`): with `word` granularity each chunk in
`segments` (and each `transcription.segment` event) is one timed word.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from voxtral_gateway.pipeline.records import SegmentResult, Transcript, Word


@dataclass(frozen=True)
class ContextBiasReport:
    """What became of the client's `context_bias` terms, said in the response."""

    terms: tuple[str, ...]
    applied_via: str | None
    """`prompt` when the engine got them as its decoder prompt; None when it could not use them."""

    def body(self) -> dict[str, Any]:
        return {
            "terms": list(self.terms),
            "applied": self.applied_via is not None,
            "applied_via": self.applied_via,
        }


def usage_body(transcript: Transcript) -> dict[str, Any]:
    """Mistral's `UsageInfo`: audio seconds (whole, rounded up) and the engine's own token counts
    (zero when no segment reached the engine, e.g. silence)."""
    prompt = transcript.usage.prompt_tokens if transcript.usage else 0
    completion = transcript.usage.completion_tokens if transcript.usage else 0
    return {
        "prompt_audio_seconds": math.ceil(transcript.duration_s),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def segment_body(result: SegmentResult) -> dict[str, Any]:
    """A `TranscriptionSegmentChunk`; `speaker_id` only with `diarize=true`, `score` never
    (the engine gives none)."""
    body = {
        "type": "transcription_segment",
        "text": result.text,
        "start": round(result.start_s, 3),
        "end": round(result.end_s, 3),
    }
    if result.speaker is not None:
        body["speaker_id"] = result.speaker
    return body


def word_body(word: Word, speaker: str | None = None) -> dict[str, Any]:
    """A `TranscriptionSegmentChunk` holding one word (its punctuation attached), with its
    segment's speaker when `diarize=true`."""
    body = {
        "type": "transcription_segment",
        "text": word.word,
        "start": round(word.start_s, 3),
        "end": round(word.end_s, 3),
    }
    if speaker is not None:
        body["speaker_id"] = speaker
    return body


def timed_chunks(transcript: Transcript, *, words: bool) -> list[dict[str, Any]]:
    """`segments`: one chunk per segment, or per word when words were asked for."""
    if words:
        return [word_body(w, s.speaker) for s in transcript.segments for w in s.words]
    return [segment_body(s) for s in transcript.segments]


def render_response(
    transcript: Transcript,
    *,
    model: str,
    language: str | None,
    include_segments: bool,
    words: bool = False,
    context_bias: ContextBiasReport | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "text": transcript.text,
        "language": language,
        "usage": usage_body(transcript),
    }
    if include_segments:
        body["segments"] = timed_chunks(transcript, words=words)
    if context_bias is not None:
        # An extra field (the SDK keeps unknown fields): terms are never dropped without a trace.
        body["context_bias"] = context_bias.body()
    return body


def format_event(event_type: str, payload: dict[str, Any]) -> str:
    data = json.dumps({**payload, "type": event_type}, ensure_ascii=False)
    return f"event: {event_type}\ndata: {data}\n\n"


def language_event(language: str) -> str:
    return format_event("transcription.language", {"audio_language": language})


def text_delta_event(text: str) -> str:
    return format_event("transcription.text.delta", {"text": text})


def segment_event(chunk: dict[str, Any]) -> str:
    """A `transcription.segment` event for one chunk (`segment_body` or `word_body`)."""
    body = {key: value for key, value in chunk.items() if key != "type"}
    return format_event("transcription.segment", body)


def done_event(response: dict[str, Any]) -> str:
    return format_event("transcription.done", response)


def error_event(error_body: dict[str, Any]) -> str:
    """After the 200 has gone out, a failure can only travel as an event (the SDK yields it as
    an event of unknown type, its payload kept)."""
    return format_event("error", {"error": error_body})
