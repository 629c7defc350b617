"""OpenAI transcription stream events as server-sent events.

`transcript.text.delta` carries the engine's token deltas of the segment next in file order;
`transcript.text.done` carries the whole text and usage. The extra `segment` object on deltas
(index, count, start, end) lets progress bars count; OpenAI's SDK ignores unknown fields. A
long file is segmented a chunk at a time while earlier segments are transcribed, so `count`
is the number found so far: final once the file is decoded (at once for files up to
VOXTRAL_VAD__CHUNK_S).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.pipeline.render import diarized_segment, usage
from voxtral_gateway.pipeline.stitch import clean_text
from voxtral_gateway.pipeline.token_stream import TextDelta


def format_sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def delta_payload(
    result: SegmentResult | TextDelta, *, text: str, segment_count: int
) -> dict[str, Any]:
    """The delta event as a dict (SSE here; JSON stream items in the RunPod worker)."""
    return {
        "type": "transcript.text.delta",
        "delta": text,
        "segment": {
            "index": result.index,
            "count": segment_count,
            "start": round(result.start_s, 3),
            "end": round(result.end_s, 3),
        },
    }


def done_payload(transcript: Transcript) -> dict[str, Any]:
    return {"type": "transcript.text.done", "text": transcript.text, "usage": usage(transcript)}


def delta_event(result: SegmentResult, *, text: str, segment_count: int) -> str:
    return format_sse(delta_payload(result, text=text, segment_count=segment_count))


def done_event(transcript: Transcript) -> str:
    return format_sse(done_payload(transcript))


def error_event(error_body: dict[str, Any]) -> str:
    """After the 200 has gone out, a failure can only travel as an event."""
    return format_sse({"type": "error", **error_body})


DONE_MARKER = "data: [DONE]\n\n"


async def openai_events(
    stream: AsyncIterator[TextDelta | SegmentResult | Transcript],
    split_speakers: Callable[[SegmentResult], Awaitable[list[SegmentResult]]] | None,
    *,
    segment_count: int,
) -> AsyncIterator[dict[str, Any]]:
    """OpenAI's stream events as dicts, from the service's `text_stream`:
    `transcript.text.delta`s in file order (the engine's token deltas when streamed; they
    concatenate to the done text), then `transcript.text.done`. With `split_speakers`, each
    segment's text is followed by OpenAI's `transcript.text.segment`s (the segment cut at
    speaker turns as it completes)."""
    segments_sent = 0
    async for item in stream:
        if isinstance(item, TextDelta):
            yield delta_payload(item, text=item.text, segment_count=segment_count)
        elif isinstance(item, SegmentResult):
            text = clean_text(item.text)
            if text and split_speakers is not None:
                for part in await split_speakers(replace(item, text=text)):
                    yield diarized_segment(part, segments_sent)
                    segments_sent += 1
        else:
            yield done_payload(item)
