"""What one request asks of the transcription service, already validated (each door builds it
from its own protocol: `TranscriptionService.options_for`, Mistral's `options_from`, RunPod
jobs, realtime sessions)."""

from __future__ import annotations

from dataclasses import dataclass

from voxtral_gateway.engine_calls import Task
from voxtral_gateway.pipeline.speakers import SpeakerRequest


@dataclass(frozen=True)
class TranscriptionOptions:
    """Per-request choices, already validated."""

    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    use_vad: bool = True
    vad_overrides: dict[str, float | int] | None = None
    count_tokens: bool = False
    """Have the engine report token counts (Transcript.usage), e.g. for Mistral's `usage`."""
    speakers: SpeakerRequest | None = None
    """Label segments by speaker (pipeline/speakers.py); None: no speaker stage."""
    word_timestamps: bool = False
    """Time every word (pipeline/align.py); needs the `align` extra."""
    max_segment_s: float | None = None
    """Shorter segments than the settings' (subtitle cues without word timings)."""
    task: Task = "transcribe"
    """`translate`: English text whatever was spoken."""
    detailed: bool = False
    """The response reports the detected language and per-segment statistics (verbose_json,
    Mistral's `language`)."""
    stream_tokens: bool = False
    """Stream the engine's token deltas (`segment_results` yields `TextDelta`s too)."""
