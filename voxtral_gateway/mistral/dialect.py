"""Mistral's transcription dialect onto the transcription service, for every door that
speaks it (the `/mistral` HTTP route and the RunPod worker): request fields -> options, the
response body, and the stream's events in order. Doors only carry what this produces."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from voxtral_gateway.mistral import render
from voxtral_gateway.mistral.protocol import MistralTranscriptionRequest
from voxtral_gateway.pipeline.ingest import validate_model
from voxtral_gateway.pipeline.prepared import PreparedAudio
from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.pipeline.speaker_encoder import SpeakersUnavailableError
from voxtral_gateway.pipeline.speakers import SpeakerRequest, SpeakerStage, read_named_references
from voxtral_gateway.pipeline.stitch import clean_text
from voxtral_gateway.pipeline.word_timing import with_word_timing
from voxtral_gateway.service import TranscriptionOptions, TranscriptionService
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
    results: AsyncIterator[SegmentResult],
    on_result: Callable[[SegmentResult], None] | None = None,
) -> AsyncIterator[MistralEvent]:
    """Language (at once when named, else with the first segment that tells it), then a text
    delta (and timed segments or words, if asked) per segment in file order, then
    `transcription.done` with the whole response. `results` is the service's
    `segment_results`, or a door's wrapper around it."""
    collected: list[SegmentResult] = []
    language_told = reply.language is not None
    if reply.language:
        yield "transcription.language", {"audio_language": reply.language}
    async for result in results:
        if on_result is not None:
            on_result(result)
        if not language_told and result.language:
            # The first detected language; `transcription.done` has the request's (the one
            # spoken longest), as verbose_json does.
            yield "transcription.language", {"audio_language": result.language}
            language_told = True
        text = clean_text(result.text)
        # Cut at speaker turns as it completes; the done event's segments keep these labels.
        parts = await service.split_speakers(prepared, result) if text else [result]
        collected += parts
        if not text:
            continue
        # Deltas concatenate to the done text: all but the first start with a space.
        prefix = " " if any(clean_text(r.text) for r in collected[: -len(parts)]) else ""
        yield "transcription.text.delta", {"text": prefix + text}
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
