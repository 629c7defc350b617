"""Speakers in every response format, checked with parsers we didn't write."""

from __future__ import annotations

import io

import srt
import webvtt
from openai.types.audio import TranscriptionDiarized

from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.pipeline.render import render_transcript

TRANSCRIPT = Transcript(
    text="Hello there. Hi, how are you?",
    segments=(
        SegmentResult(0, 0.5, 1.7, "Hello there.", speaker="agent"),
        SegmentResult(1, 2.4, 4.0, "Hi, how are you?", speaker="A"),
    ),
    duration_s=4.5,
    language="en",
)


def test_diarized_json_matches_openai_sdk_types() -> None:
    body = render_transcript(TRANSCRIPT, "diarized_json")
    parsed = TranscriptionDiarized.model_validate(body)
    assert [(s.speaker, s.text, s.start, s.end) for s in parsed.segments] == [
        ("agent", "Hello there.", 0.5, 1.7),
        ("A", "Hi, how are you?", 2.4, 4.0),
    ]
    assert {s.type for s in parsed.segments} == {"transcript.text.segment"}
    assert len({s.id for s in parsed.segments}) == 2
    assert parsed.text == TRANSCRIPT.text and parsed.duration == 4.5


def test_verbose_json_segments_carry_the_speaker() -> None:
    # Only measured statistics are sent (test_languages checks the SDK parses them), so no
    # strict TranscriptionVerbose validation here: segment fields no engine measured are absent.
    body = render_transcript(TRANSCRIPT, "verbose_json")
    assert [s["speaker"] for s in body["segments"]] == ["agent", "A"]


def test_no_speakers_leaves_verbose_json_as_before() -> None:
    plain = Transcript("x", (SegmentResult(0, 0.0, 1.0, "x"),), 1.0, "en")
    assert "speaker" not in render_transcript(plain, "verbose_json")["segments"][0]
    assert render_transcript(plain, "srt").splitlines()[2] == "x"


def test_srt_cues_start_with_the_speaker() -> None:
    cues = list(srt.parse(render_transcript(TRANSCRIPT, "srt")))
    assert [c.content for c in cues] == ["agent: Hello there.", "A: Hi, how are you?"]


def test_vtt_cues_carry_a_voice_tag() -> None:
    captions = webvtt.from_buffer(io.StringIO(render_transcript(TRANSCRIPT, "vtt")))
    assert [c.voice for c in captions] == ["agent", "A"]
    assert [c.text for c in captions] == ["Hello there.", "Hi, how are you?"]
