"""Mistral's transcription dialect onto the transcription service, for every door that
speaks it (the `/mistral` HTTP route and the RunPod worker): request fields -> options, the
response body, and the stream's events in order. Doors only carry what this produces."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from voxtral_gateway.mistral import render
from voxtral_gateway.mistral.protocol import MistralTranscriptionRequest
from voxtral_gateway.options import TranscriptionOptions
from voxtral_gateway.pipeline.ingest import validate_model
from voxtral_gateway.pipeline.prepared import PreparedAudio
from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.pipeline.speaker_encoder import SpeakersUnavailableError
from voxtral_gateway.pipeline.speakers import SpeakerRequest, SpeakerStage, read_named_references
from voxtral_gateway.pipeline.stitch import clean_text
from voxtral_gateway.pipeline.token_stream import TextDelta
from voxtral_gateway.pipeline.word_timing import with_word_timing
from voxtral_gateway.service import TranscriptionService
from voxtral_gateway.settings import Settings

MistralEvent = tuple[str, dict[str, Any]]
"""(event type, payload) of one `transcription.*` stream event."""


def validate_mistral_fields(fields: dict[str, object]) -> MistralTranscriptionRequest:
    """Fields -> Mistral's request model; the first problem becomes a 400 naming it."""
    return validate_model(MistralTranscriptionRequest, fields)


def context_bias_report(
    params: MistralTranscriptionRequest, settings: Settings
) -> render.ContextBiasReport | None:
    if not params.context_bias:
        return None
    applied_via = "prompt" if settings.context_bias == "prompt" else None
    return render.ContextBiasReport(tuple(params.context_bias), applied_via)


async def options_from(
    params: MistralTranscriptionRequest,
    service: TranscriptionService,
    speaker_stage: SpeakerStage | None,
) -> TranscriptionOptions:
    """The request's options: the same language check as OpenAI's door, engine token counts
    for `usage`, words and speakers when asked for."""
    settings = service.settings
    options = TranscriptionOptions(
        language=await service.checked_language(params.language),
        prompt=params.context_prompt() if settings.context_bias == "prompt" else None,
        temperature=params.temperature,
        use_vad=settings.vad.enabled,
        count_tokens=True,  # Mistral's `usage` reports the engine's tokens
        detailed=True,  # Mistral's `language`: the detected one when nobody named one
        speakers=await _speakers_from(params, settings, speaker_stage),
        stream_tokens=params.stream,  # the engine's token deltas as `transcription.text.delta`
    )
    return with_word_timing(
        options, words=params.wants_words, cues=False, subtitles=settings.subtitles
    )


async def _speakers_from(
    params: MistralTranscriptionRequest, settings: Settings, stage: SpeakerStage | None
) -> SpeakerRequest | None:
    """`diarize=true` -> the speaker stage; `speaker_references` name its clusters."""
    if not params.diarize:
        return None
    if stage is None or not stage.is_available:
        raise SpeakersUnavailableError(param="diarize")
    references = params.speaker_references or {}
    return await read_named_references(references, settings, param="speaker_references")


class MistralReply:
    """What the response says besides the transcript: model, language, segments, bias report."""

    def __init__(
        self, params: MistralTranscriptionRequest, language: str | None, settings: Settings
    ) -> None:
        self.params = params
        self.language = language
        """The client's or the configured language, known before any audio is heard; None:
        detected per segment (or unknown)."""
        self.context_bias = context_bias_report(params, settings)

    def body(self, transcript: Transcript) -> dict[str, Any]:
        return render.render_response(
            transcript,
            model=self.params.model,
            # Named, or detected as verbose_json reports it; None (JSON null) when unknown.
            language=transcript.language,
            include_segments=self.params.wants_segments,
            words=self.params.wants_words,
            context_bias=self.context_bias,
        )


async def mistral_events(
    service: TranscriptionService,
    prepared: PreparedAudio,
    options: TranscriptionOptions,
    reply: MistralReply,
    results: AsyncIterator[SegmentResult | TextDelta],
    on_result: Callable[[SegmentResult], None] | None = None,
) -> AsyncIterator[MistralEvent]:
    """Language (at once when named, else as soon as a segment's call tells it: before its
    first delta on Whisper, which learns it first; with the segment's result otherwise), then
    the service's text deltas in file order (the engine's token deltas with `stream`; they
    join to the final text), timed segments or words after each segment's text, if asked, then
    `transcription.done` with the whole response. `results` is the service's `segment_results`,
    or a door's wrapper around it."""
    language_told = reply.language is not None
    if reply.language:
        yield "transcription.language", {"audio_language": reply.language}
    collected: list[SegmentResult] = []  # cut at speaker turns: the done event's segments
    stream = service.text_stream(prepared, options, results=results, on_result=on_result)
    async for item in stream:
        if isinstance(item, Transcript):
            continue  # built below from the speaker-cut parts
        if not language_told and item.language:
            # The first detected language; `transcription.done` has the request's (the one
            # spoken longest), as verbose_json does.
            yield "transcription.language", {"audio_language": item.language}
            language_told = True
        if isinstance(item, TextDelta):
            yield "transcription.text.delta", {"text": item.text}
            continue
        text = clean_text(item.text)
        # Cut at speaker turns as it completes; the done event's segments keep these labels.
        parts = await service.split_speakers(prepared, item) if text else [item]
        collected += parts
        if not text:
            continue
        chunks = []
        for part in parts:
            if reply.params.wants_words:
                chunks += [render.word_body(word, part.speaker) for word in part.words]
            elif reply.params.wants_segments:
                part_text = clean_text(part.text)
                chunks.append(render.segment_body(replace(part, text=part_text, usage=None)))
        for chunk in chunks:
            yield "transcription.segment", {k: v for k, v in chunk.items() if k != "type"}
    yield "transcription.done", reply.body(service.finish(prepared, collected, options))
