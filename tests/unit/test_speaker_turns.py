"""A packed window's text cut at its speech regions by time, each part with its speaker."""

from __future__ import annotations

from voxtral_gateway.pipeline.records import SegmentResult, Span, TokenUsage, Word
from voxtral_gateway.pipeline.speaker_turns import Region, region_bounds, split_at_regions

# Alice 0.5-3.0 s, Bob 4.0-6.0 s, Alice 7.0-9.0 s, in one window 0.3-9.2 s.
REGIONS = [Region(Span(0.5, 3.0), "A"), Region(Span(4.0, 6.0), "B"), Region(Span(7.0, 9.0), "A")]


def _window(text: str, **fields) -> SegmentResult:
    return SegmentResult(3, 0.3, 9.2, text, **fields)


def _parts(parts: list[SegmentResult]) -> list[tuple[str | None, str]]:
    return [(p.speaker, p.text) for p in parts]


def test_timed_words_go_to_the_region_they_were_said_in() -> None:
    words = (
        Word("Hello", 0.6, 1.0),
        Word("there.", 1.1, 2.9),
        Word("Hi!", 4.1, 4.6),
        Word("Bye", 7.2, 7.8),
        Word("now.", 3.2, 3.4),  # in the pause, nearer Alice's first region
    )
    parts = split_at_regions(_window("x", words=words), REGIONS, pad_s=0.2)
    assert _parts(parts) == [("A", "Hello there. now."), ("B", "Hi!"), ("A", "Bye")]
    assert [w.word for w in parts[1].words] == ["Hi!"]
    assert [(p.start_s, p.end_s) for p in parts] == [(0.3, 3.2), (3.8, 6.2), (6.8, 9.2)]


def test_a_phrase_over_a_turn_change_is_cut_at_the_sentence_end_nearest_the_turn() -> None:
    # Whisper's timestamps put Alice's sentence and Bob's reply in one phrase.
    phrases = (
        Word("Did you bring the report? Yes, it is here.", 0.4, 6.1),
        Word("Thank you.", 7.0, 9.0),
    )
    text = "Did you bring the report? Yes, it is here. Thank you."
    parts = split_at_regions(_window(text, phrases=phrases), REGIONS, pad_s=0.2)
    assert _parts(parts) == [
        ("A", "Did you bring the report?"),
        ("B", "Yes, it is here."),
        ("A", "Thank you."),
    ]
    # Phrases that lost part of the text (an unclosed timestamp) are not trusted.
    short = split_at_regions(_window(text, phrases=phrases[1:]), REGIONS, pad_s=0.2)
    assert " ".join(p.text for p in short) == text


def test_untimed_text_is_cut_at_the_sentence_end_nearest_each_turn() -> None:
    # By speech time alone the first cut would fall after "report?" plus a word or two.
    text = "Did you bring the report? Yes, it is in my bag. Thank you so much."
    parts = split_at_regions(_window(text), REGIONS, pad_s=0.2)
    assert _parts(parts) == [
        ("A", "Did you bring the report?"),
        ("B", "Yes, it is in my bag."),
        ("A", "Thank you so much."),
    ]


def test_untimed_text_is_shared_out_by_each_regions_speech() -> None:
    # 2.5 s, 2 s and 2 s of speech: 13 words of equal length fall 5:4:4.
    text = " ".join(f"w{n:02}" for n in range(13))
    parts = split_at_regions(_window(text), REGIONS, pad_s=0.2)
    assert [p.speaker for p in parts] == ["A", "B", "A"]
    assert " ".join(p.text for p in parts) == text
    assert [len(p.text.split()) for p in parts] == [5, 4, 4]


def test_usage_and_tokens_stay_with_the_first_part() -> None:
    usage = TokenUsage(10, 5)
    window = _window("a b c", usage=usage, tokens=(1, 2, 3))
    parts = split_at_regions(window, REGIONS, pad_s=0.2)
    assert [p.usage for p in parts] == [usage, None, None]
    assert [p.tokens for p in parts] == [(1, 2, 3), None, None]


def test_a_window_of_one_region_is_kept_whole_with_its_speaker() -> None:
    window = _window("hello there")
    assert split_at_regions(window, REGIONS[1:2], pad_s=0.2) == [
        SegmentResult(3, 0.3, 9.2, "hello there", speaker="B")
    ]


def test_region_bounds_pad_into_pauses_up_to_their_midpoint() -> None:
    spans = [Span(1.0, 2.0), Span(2.2, 3.0)]
    assert region_bounds(spans, Span(0.8, 3.2), 0.2) == [Span(0.8, 2.1), Span(2.1, 3.2)]
