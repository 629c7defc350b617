"""Word error rate against the corpus's known text, after one shared normaliser.

Both sides go through :func:`normalize_text`, so "It's 10." and "its ten" count as equal: the
comparison measures recognition, not casing, punctuation or how numbers are written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

_ONES = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))

_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DIGITS = re.compile(r"\d+")
_APOSTROPHE = re.compile(r"['\u2019]")
_NOT_WORD = re.compile(r"[\W_]+")


def number_to_words(number: int) -> str:
    """Spell a non-negative integer the way espeak-ng reads it: 115 -> "one hundred fifteen"."""
    if number < 0:
        raise ValueError(f"negative number: {number}")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for scale, name in _SCALES:
        if number >= scale:
            head, rest = divmod(number, scale)
            tail = "" if rest == 0 else " " + number_to_words(rest)
            return f"{number_to_words(head)} {name}{tail}"
    raise AssertionError("unreachable")  # pragma: no cover


def normalize_text(text: str) -> str:
    """Lowercase, numbers as words, apostrophes dropped, other non-letters as spaces."""
    text = _THOUSANDS_SEPARATOR.sub("", text.lower())
    text = _DIGITS.sub(lambda match: f" {number_to_words(int(match.group()))} ", text)
    text = _APOSTROPHE.sub("", text)
    return " ".join(_NOT_WORD.sub(" ", text).split())


@dataclass(frozen=True)
class WordErrors:
    """Corpus-level word errors: ``wer = (substitutions + deletions + insertions) / ref_words``."""

    wer: float
    ref_words: int
    substitutions: int
    deletions: int
    insertions: int


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> WordErrors | None:
    """Pooled WER over pairs (not a mean of per-file rates); None when no reference has words."""
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses differ in length")
    pairs = [
        (normalize_text(r), normalize_text(h)) for r, h in zip(references, hypotheses, strict=True)
    ]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return None
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    ref_words = out.hits + out.substitutions + out.deletions
    return WordErrors(
        wer=(out.substitutions + out.deletions + out.insertions) / ref_words,
        ref_words=ref_words,
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions,
    )


def wer(reference: str, hypothesis: str) -> float:
    """WER of one pair after `normalize_text`; 0.0 when the reference has no words and
    neither does the hypothesis, 1.0 when only the hypothesis has words."""
    errors = word_errors([reference], [hypothesis])
    if errors is None:
        return 0.0 if not normalize_text(hypothesis) else 1.0
    return errors.wer
