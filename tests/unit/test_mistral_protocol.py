"""Mistral's dialect without a server: request folding, the engine's counted stream, and our
events and bodies read back by the `mistralai` SDK's own models."""

from __future__ import annotations

import json

import pytest
from mistralai.client import models as sdk
from pydantic import ValidationError

from voxtral_gateway.engine_wire import parse_counted_stream
from voxtral_gateway.errors import UpstreamError
from voxtral_gateway.mistral import protocol, render
from voxtral_gateway.mistral.protocol import MistralTranscriptionRequest, mistral_error_body
from voxtral_gateway.pipeline.records import SegmentResult, TokenUsage, Transcript, Word
from voxtral_gateway.pipeline.stitch import stitch

# Shape of vLLM 0.32's answer to `stream=true, stream_include_usage=true` (Whisper tiny.en).
VLLM_STREAM = (
    b'data: {"object":"transcription.chunk","choices":[{"delta":{"content":" Hello"}}]}\n\n'
    b'data: {"object":"transcription.chunk","choices":[{"delta":{"content":" world."}}]}\n\n'
    b'data: {"object":"transcription.chunk","choices":[{"delta":{"content":""},'
    b'"finish_reason":"stop"}]}\n\n'
    b'data: {"object":"transcription.chunk","choices":[],'
    b'"usage":{"prompt_tokens":193,"total_tokens":202,"completion_tokens":9}}\n\n'
    b"data: [DONE]\n\n"
)


def test_sdk_form_values_fold_into_lists_and_dicts() -> None:
    request = MistralTranscriptionRequest.model_validate(
        {
            "model": "m",
            "diarize": "false",
            "context_bias": "Voxtral",  # one repeated key arrives as a plain value
            "timestamp_granularities": ["segment"],
            "stream": "true",
        }
    )
    assert request.context_bias == ["Voxtral"]
    assert request.stream is True and request.diarize is False
    assert request.context_prompt() == "Glossary: Voxtral."


def test_speaker_references_json_part_needs_diarize() -> None:
    with pytest.raises(ValueError, match="diarize=true"):
        MistralTranscriptionRequest.model_validate(
            {"model": "m", "speaker_references": json.dumps({"ann": "https://a.test/a.wav"})}
        )


def test_counted_stream_gives_text_and_engine_tokens() -> None:
    answer = parse_counted_stream(VLLM_STREAM)
    assert answer.text == " Hello world."
    assert answer.usage == TokenUsage(prompt_tokens=193, completion_tokens=9)


def test_counted_stream_without_usage_or_with_an_error_is_an_upstream_error() -> None:
    without_usage = VLLM_STREAM.split(b'data: {"object":"transcription.chunk","choices":[],')[0]
    with pytest.raises(UpstreamError):
        parse_counted_stream(without_usage)
    with pytest.raises(UpstreamError, match="mid-answer"):
        parse_counted_stream(b'data: {"error": {"message": "boom"}}\n\n')


def test_stitch_sums_every_calls_tokens_even_for_silent_segments() -> None:
    results = [
        SegmentResult(0, 0.0, 1.0, "hello", TokenUsage(10, 2)),
        SegmentResult(1, 1.0, 2.0, "  ", TokenUsage(10, 1)),  # heard as nothing, still paid
    ]
    transcript = stitch(results, duration_s=2.0, language="en")
    assert [s.text for s in transcript.segments] == ["hello"]
    assert transcript.segments[0].usage == TokenUsage(10, 2)
    assert transcript.usage == TokenUsage(20, 3)
    assert stitch([SegmentResult(0, 0.0, 1.0, "x")], duration_s=1.0, language="").usage is None


def _transcript() -> Transcript:
    segments = (SegmentResult(0, 0.25, 1.5, "Hello"), SegmentResult(1, 2.0, 3.1, "world."))
    return Transcript("Hello world.", segments, 3.1, "en", TokenUsage(400, 5))


def test_response_body_validates_as_the_sdks_transcription_response() -> None:
    body = render.render_response(
        _transcript(),
        model="voxtral-mini-latest",
        language=None,
        include_segments=True,
        context_bias=render.ContextBiasReport(("Voxtral",), None),
    )
    response = sdk.TranscriptionResponse.model_validate(body)
    assert response.usage.prompt_audio_seconds == 4
    assert response.usage.total_tokens == 405
    assert [(s.start, s.end) for s in response.segments] == [(0.25, 1.5), (2.0, 3.1)]
    assert response.additional_properties["context_bias"]["applied"] is False


def test_word_granularity_gives_one_sdk_segment_chunk_per_word() -> None:
    words = (Word("Hello", 0.3, 0.7), Word("there.", 0.8, 1.2))
    transcript = Transcript(
        "Hello there.", (SegmentResult(0, 0.25, 1.5, "Hello there.", words=words),), 1.5, "en"
    )
    body = render.render_response(
        transcript, model="m", language="en", include_segments=True, words=True, context_bias=None
    )
    response = sdk.TranscriptionResponse.model_validate(body)
    assert [(s.text, s.start, s.end) for s in response.segments] == [
        ("Hello", 0.3, 0.7),
        ("there.", 0.8, 1.2),
    ]
    assert all(s.type == "transcription_segment" for s in response.segments)


def test_word_granularity_is_a_400_naming_the_extra_without_the_aligner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fields = {"model": "m", "timestamp_granularities": "word"}
    assert MistralTranscriptionRequest.model_validate(fields).wants_words
    monkeypatch.setattr(protocol, "WORD_TIMESTAMPS_AVAILABLE", False)
    with pytest.raises(ValidationError, match=r"pip install 'voxtral-gateway\[align\]'"):
        MistralTranscriptionRequest.model_validate(fields)


def test_events_parse_as_the_sdks_stream_events() -> None:
    done = render.render_response(
        _transcript(), model="m", language="en", include_segments=False, context_bias=None
    )
    stream = (
        render.language_event("en")
        + render.text_delta_event("Hello")
        + render.segment_event(render.segment_body(_transcript().segments[0]))
        + render.done_event(done)
    )
    parsed = []
    for block in stream.strip().split("\n\n"):
        event_line, data_line = block.split("\n")
        parsed.append(
            sdk.TranscriptionStreamEvents.model_validate(
                {"event": event_line.removeprefix("event: "), "data": json.loads(data_line[6:])}
            )
        )
    assert isinstance(parsed[0].data, sdk.TranscriptionStreamLanguage)
    assert isinstance(parsed[1].data, sdk.TranscriptionStreamTextDelta)
    assert isinstance(parsed[2].data, sdk.TranscriptionStreamSegmentDelta)
    assert isinstance(parsed[3].data, sdk.TranscriptionStreamDone)
    assert parsed[3].data.text == "Hello world."


def test_error_event_reaches_the_sdk_with_its_payload() -> None:
    body = mistral_error_body("The speech engine failed.", "upstream_error", code="bad_gateway")
    event_line, data_line = render.error_event(body).strip().split("\n")
    parsed = sdk.TranscriptionStreamEvents.model_validate(
        {"event": event_line.removeprefix("event: "), "data": json.loads(data_line[6:])}
    )
    assert parsed.event == "error"
    assert parsed.data.raw["error"]["code"] == "bad_gateway"
