"""The WER normaliser and pooled WER used by bench/ to score transcripts."""

from __future__ import annotations

import pytest

from bench.accuracy import normalize_text, number_to_words, word_errors


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (15, "fifteen"),
        (40, "forty"),
        (42, "forty two"),
        (100, "one hundred"),
        (115, "one hundred fifteen"),
        (2000, "two thousand"),
        (1_234_567, "one million two hundred thirty four thousand five hundred sixty seven"),
    ],
)
def test_number_to_words_spells_like_espeak(number: int, words: str) -> None:
    assert number_to_words(number) == words


def test_number_to_words_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        number_to_words(-1)


def test_normalize_drops_case_punctuation_and_apostrophes() -> None:
    assert normalize_text("It's easy to tell the depth of a well.") == (
        "its easy to tell the depth of a well"
    )


def test_normalize_spells_digits_and_thousands_separators() -> None:
    assert normalize_text("The meeting starts at 10, and 1,500 came.") == (
        "the meeting starts at ten and one thousand five hundred came"
    )


def test_normalize_splits_hyphens_and_collapses_space() -> None:
    assert normalize_text("  Well-known\n\tfacts!  ") == "well known facts"


def test_digit_and_word_transcripts_score_zero_wer() -> None:
    errors = word_errors(
        ["Please call me back in 15 minutes."], ["please call me back in fifteen minutes"]
    )
    assert errors is not None
    assert errors.wer == 0.0
    assert errors.ref_words == 7


def test_wer_is_pooled_over_words_not_averaged_over_files() -> None:
    # 1 error in 1 word and 0 errors in 9 words: pooled 1/10, a per-file mean would say 0.5.
    errors = word_errors(
        ["hello", "one two three four five six seven eight nine"],
        ["yellow", "one two three four five six seven eight nine"],
    )
    assert errors is not None
    assert errors.wer == pytest.approx(0.1)
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 0, 0)


def test_empty_hypothesis_counts_every_reference_word_as_deleted() -> None:
    errors = word_errors(["a b c"], [""])
    assert errors is not None
    assert errors.wer == 1.0
    assert errors.deletions == 3


def test_insertions_can_push_wer_above_one() -> None:
    errors = word_errors(["yes"], ["yes yes yes"])
    assert errors is not None
    assert errors.insertions == 2
    assert errors.wer == 2.0


def test_no_reference_words_gives_none() -> None:
    assert word_errors(["...", ""], ["x", "y"]) is None
    assert word_errors([], []) is None


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="differ"):
        word_errors(["a"], [])
