"""Subtitle cues from timed words: pure, no model, checked with the srt and webvtt parsers."""

from __future__ import annotations

import io

import srt
import webvtt

from voxtral_gateway.pipeline.cues import CueLimits, build_cues, spread_words
from voxtral_gateway.pipeline.records import SegmentResult, Transcript, Word
from voxtral_gateway.pipeline.render import render_transcript, render_verbose_json


def _words(text: str, start_s: float, *, word_s: float = 0.3, gap_s: float = 0.05) -> list[Word]:
    words, t = [], start_s
    for piece in text.split():
        words.append(Word(piece, round(t, 3), round(t + word_s, 3)))
        t += word_s + gap_s
    return words


def _transcript(*segments: tuple[str, list[Word]]) -> Transcript:
    results = tuple(
        SegmentResult(i, words[0].start_s, words[-1].end_s, text, words=tuple(words))
        for i, (text, words) in enumerate(segments)
    )
    return Transcript(" ".join(t for t, _ in segments), results, 100.0, "en")


LONG = (
    "so what we are going to do today is walk through the whole plan from the very first "
    "step to the last one and then we will talk about what could go wrong along the way "
    "before anyone starts building anything at all"
)


def test_long_run_of_speech_becomes_cues_within_every_limit() -> None:
    words = _words(LONG, 2.0)
    cues = build_cues(_transcript((LONG, words)), CueLimits())
    assert len(cues) >= 3
    for cue in cues:
        assert cue.end_s - cue.start_s <= 7.0
        assert len(cue.lines) <= 2
        assert all(len(line) <= 42 for line in cue.lines)
    # No word split or lost, in order; cue times are the words' times.
    assert " ".join(" ".join(c.lines) for c in cues) == LONG
    assert cues[0].start_s == words[0].start_s and cues[-1].end_s == words[-1].end_s


def test_cue_ends_at_pause_and_at_sentence_end() -> None:
    first = _words("Hello there.", 0.0)
    second = _words("How are you", first[-1].end_s + 0.05)
    third = _words("today", second[-1].end_s + 0.8)  # a pause longer than pause_s
    words = first + second + third
    cues = build_cues(_transcript(("Hello there. How are you today", words)), CueLimits())
    assert [c.text for c in cues] == ["Hello there.", "How are you", "today"]
    assert cues[2].start_s == third[0].start_s


def test_word_longer_than_a_line_gets_its_own_cue_unsplit() -> None:
    giant = "x" * 60
    words = _words(f"a {giant} b", 0.0)
    cues = build_cues(_transcript((f"a {giant} b", words)), CueLimits())
    assert [c.text for c in cues] == ["a", giant, "b"]


def test_lines_are_balanced() -> None:
    text = "one two three four five six seven eight nine ten eleven"
    (cue,) = build_cues(_transcript((text, _words(text, 0.0, word_s=0.2))), CueLimits())
    assert len(cue.lines) == 2 and abs(len(cue.lines[0]) - len(cue.lines[1])) <= 6


def test_segment_without_words_is_spread_by_characters() -> None:
    segment = SegmentResult(0, 10.0, 16.0, "aaaa bbbb cccc dddd")
    words = spread_words(segment)
    assert [w.word for w in words] == ["aaaa", "bbbb", "cccc", "dddd"]
    assert words[0].start_s == 10.0 and words[-1].end_s == 16.0
    assert all(a.end_s == b.start_s for a, b in zip(words, words[1:], strict=False))


def test_srt_and_vtt_from_cues_parse_with_their_libraries() -> None:
    transcript = _transcript((LONG, _words(LONG, 2.0)))
    subtitles = list(srt.parse(render_transcript(transcript, "srt")))
    captions = webvtt.from_buffer(io.StringIO(render_transcript(transcript, "vtt")))
    assert len(subtitles) == len(captions) == len(build_cues(transcript, CueLimits()))
    assert " ".join(s.content.replace("\n", " ") for s in subtitles) == LONG
    assert captions[0].start == "00:00:02.000"


def test_verbose_json_words_only_when_asked() -> None:
    transcript = _transcript(("Hi there.", _words("Hi there.", 1.0)))
    assert "words" not in render_verbose_json(transcript, ["segment"])
    both = render_verbose_json(transcript, ["segment", "word"])
    assert both["words"] == [
        {"word": "Hi", "start": 1.0, "end": 1.3},
        {"word": "there.", "start": 1.35, "end": 1.65},
    ]
    assert "segments" in both
    assert "segments" not in render_verbose_json(transcript, ["word"])
