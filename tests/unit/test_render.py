"""Response formats, checked with parsers we did not write (srt, webvtt-py)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
import srt
import webvtt

from voxtral_gateway.pipeline.records import SegmentResult, Transcript
from voxtral_gateway.pipeline.render import format_timestamp, render_transcript

TRANSCRIPT = Transcript(
    text="Hello there. General Kenobi.",
    segments=(
        SegmentResult(0, 0.0, 1.001, "Hello there."),
        SegmentResult(3, 3601.2494, 3605.9996, "General Kenobi."),
    ),
    duration_s=3606.2,
    language="en",
)


def test_timestamps_round_to_whole_milliseconds_once() -> None:
    # 1.001 * 1000 is 1000.999...: truncating would print ",000".
    assert format_timestamp(1.001, decimal_marker=",") == "00:00:01,001"
    assert format_timestamp(3605.9996, decimal_marker=".") == "01:00:06.000"
    assert format_timestamp(-0.2, decimal_marker=".") == "00:00:00.000"


def test_srt_parses_with_srt_library() -> None:
    body = render_transcript(TRANSCRIPT, "srt")
    subtitles = list(srt.parse(body))
    assert [s.content for s in subtitles] == ["Hello there.", "General Kenobi."]
    assert [s.index for s in subtitles] == [1, 2]
    assert subtitles[0].end.total_seconds() == pytest.approx(1.001)
    assert subtitles[1].start.total_seconds() == pytest.approx(3601.249)


def test_vtt_parses_with_webvtt() -> None:
    body = render_transcript(TRANSCRIPT, "vtt")
    captions = webvtt.from_buffer(io.StringIO(body))
    assert [c.text for c in captions] == ["Hello there.", "General Kenobi."]
    assert captions[1].start == "01:00:01.249"


def test_json_has_text_and_duration_usage_rounded_up() -> None:
    body = render_transcript(TRANSCRIPT, "json")
    assert body == {"text": TRANSCRIPT.text, "usage": {"type": "duration", "seconds": 3607}}


def test_verbose_json_lists_segments_with_times() -> None:
    body = render_transcript(TRANSCRIPT, "verbose_json")
    assert body["language"] == "en"
    assert body["duration"] == pytest.approx(3606.2)
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in body["segments"]] == [
        (0, 0.0, 1.001, "Hello there."),
        (1, 3601.249, 3606.0, "General Kenobi."),
    ]


def test_text_format_ends_with_newline_and_empty_stays_empty() -> None:
    assert render_transcript(TRANSCRIPT, "text") == TRANSCRIPT.text + "\n"
    empty = Transcript(text="", segments=(), duration_s=2.0, language="en")
    assert render_transcript(empty, "text") == ""
    assert list(srt.parse(render_transcript(empty, "srt"))) == []
    assert render_transcript(empty, "vtt").startswith("WEBVTT")


def test_verbose_json_leaves_out_what_nothing_measured() -> None:
    # No engine statistics, no VAD, no detection: no placeholder numbers, no invented language.
    body = render_transcript(replace(TRANSCRIPT, language=None), "verbose_json")
    assert "language" not in body
    for segment in body["segments"]:
        assert not {"temperature", "avg_logprob", "no_speech_prob", "tokens"} & set(segment)


def test_verbose_json_reports_measured_fields_per_segment() -> None:
    measured = SegmentResult(
        0,
        0.0,
        2.0,
        "la la la la la la la la la la la la",
        language="fr",
        temperature=0.3,
        avg_logprob=-0.42,
        tokens=(1, 2, 3),
        no_speech_prob=0.125,
    )
    plain = SegmentResult(1, 2.0, 3.0, "Un chat noir.")
    transcript = Transcript("…", (measured, plain), 3.0, "fr")
    first, second = render_transcript(transcript, "verbose_json")["segments"]
    assert (first["language"], first["temperature"], first["avg_logprob"]) == ("fr", 0.3, -0.42)
    assert (first["tokens"], first["no_speech_prob"]) == ([1, 2, 3], 0.125)
    # Whisper's gauge: repetitive text compresses well, a short sentence does not.
    assert first["compression_ratio"] > 2.0 > second["compression_ratio"]


def test_translation_bodies_follow_openai_translation_shapes() -> None:
    translation = Transcript("Hello.", TRANSCRIPT.segments, 1.2, "de", task="translate")
    assert render_transcript(translation, "json") == {"text": "Hello."}
    verbose = render_transcript(translation, "verbose_json")
    assert verbose["task"] == "translate" and verbose["language"] == "de"
    assert "usage" not in verbose
