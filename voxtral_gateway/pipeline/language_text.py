"""Checking each candidate language by the text Whisper decodes in it
(`language_detection_method="text"`).

Forced to a language, Whisper base writes that language's words whatever was spoken, but in
the right language the words are real and fit together; in a wrong one they are
transliterated sounds ("de maak erop de boek" for Dutch, "the marker, or the hook" in English).
A text language identifier trained on real text tells the two apart: each candidate L's
likelihood score (`language_scoring.most_likely`) gets the log of the identifier's
probability that L's own decoded text is in L,

    score(L) = likelihood(L) + log(p_text(L | text decoded in L) + TEXT_FLOOR)

The identifier is lingua (`lingua-language-detector`; its n-gram models ship in the wheel, no
download), restricted to the candidates. `TEXT_TOKENS` = 10 decoded tokens: the same batch
as the likelihood's 5 (the likelihood is read from its first 5 tokens' log-probabilities), so
the method costs one decoder batch, as `likelihood` does. Chosen on the 13-clip corpus
(bench/results/languages-cpu-whisper-base/detection.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from voxtral_gateway.pipeline.language_scoring import DECODED_TOKENS, greedy_decode_in_each

log = logging.getLogger(__name__)

TEXT_TOKENS = 10
"""Tokens decoded per candidate for the text check (10 and 15 tie on the corpus; 10 is cheaper)."""
TEXT_FLOOR = 1e-3
"""Added to the identifier's probability: one unreadable decode weighs at most log(1e-3)."""


class TextIdentifierUnavailableError(RuntimeError):
    """lingua is not installed."""


@dataclass(frozen=True)
class Transcript:
    """A short greedy transcription in one forced language."""

    likelihood: float
    """Mean log-probability of its first `DECODED_TOKENS` tokens (`decoded_log_likelihoods`)."""
    text: str


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (Whisper's tokens) back to bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    codes, shifted = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shifted)
            shifted += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def token_text(tokens: Sequence[str]) -> str:
    """The text of Whisper BPE tokens (special tokens dropped; a cut multi-byte character
    becomes U+FFFD)."""
    decoder = _byte_decoder()
    pieces = (token for token in tokens if not token.startswith("<|"))
    data = bytes(decoder[char] for piece in pieces for char in piece if char in decoder)
    return data.decode("utf-8", errors="replace").strip()


def decoded_transcripts(
    ctranslate2: Any,
    model: Any,
    encoded: Any,
    languages: Sequence[str],
    tokens: int = TEXT_TOKENS,
    scored: int = DECODED_TOKENS,
) -> dict[str, Transcript]:
    """A `tokens`-token greedy transcription of `encoded` in each of `languages` (one batch),
    with the mean log-probability of its first `scored` tokens: greedy decoding is the same
    prefix however long it runs, so this equals `decoded_log_likelihoods(..., scored)`."""
    results = greedy_decode_in_each(
        ctranslate2, model, encoded, languages, tokens, return_logits_vocab=True
    )
    transcripts = {}
    for language, result in zip(languages, results, strict=True):
        # Greedy: each step's token is its best logit. As in CTranslate2's scores, an end token
        # (a step that `sequences` leaves out) counts in the sum but not in the length.
        log_probabilities = [
            _best_log_probability(np.asarray(step).reshape(-1))
            for step in result.logits[0][:scored]
        ]
        length = max(1, min(len(result.sequences_ids[0]), scored))
        transcripts[language] = Transcript(
            likelihood=sum(log_probabilities) / length if log_probabilities else -math.inf,
            text=token_text(result.sequences[0]),
        )
    return transcripts


def _best_log_probability(logits: np.ndarray) -> float:
    peak = float(logits.max())
    return -math.log(float(np.exp(logits - peak).sum()))


class TextLanguageIdentifier:
    """Probability that a text is in each of a fixed set of languages (lingua, offline)."""

    def __init__(self, languages: Collection[str]) -> None:
        try:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
        except ImportError as exc:
            raise TextIdentifierUnavailableError(
                "lingua-language-detector is not installed: pip install '.[languages]'"
            ) from exc
        by_code = {}
        for code in languages:
            iso = getattr(IsoCode639_1, code.upper(), None)
            if iso is None:
                raise ValueError(f"the text identifier does not know `{code}`")
            by_code[code] = Language.from_iso_code_639_1(iso)
        # Preloaded: the first request would otherwise wait ~2 s for the n-gram models.
        self._detector = (
            LanguageDetectorBuilder.from_languages(*by_code.values())
            .with_preloaded_language_models()
            .build()
        )
        self._code = {language: code for code, language in by_code.items()}

    def probabilities(self, text: str) -> dict[str, float]:
        """Each language's probability for `text` (summing to 1; all 0 for no letters)."""
        values = self._detector.compute_language_confidence_values(text)
        return {self._code[value.language]: value.value for value in values}


def text_identifier_for(candidates: Collection[str]) -> TextLanguageIdentifier | None:
    """The identifier over `candidates`; None (the `likelihood` ranking is used instead) when
    lingua does not know one of them: a candidate without a text check would be favoured."""
    try:
        return TextLanguageIdentifier(sorted(candidates))
    except ValueError as exc:
        log.warning("language_detection_method=text falls back to likelihood: %s", exc)
        return None


def most_likely_with_text(
    probabilities: Sequence[tuple[str, float]],
    transcripts: dict[str, Transcript],
    identifier: TextLanguageIdentifier,
    tokens: int = DECODED_TOKENS,
) -> str:
    """The language of `transcripts` with the best score (module docstring)."""
    token_probability = dict(probabilities)

    def score(language: str) -> float:
        transcript = transcripts[language]
        text_probability = identifier.probabilities(transcript.text).get(language, 0.0)
        return (
            transcript.likelihood
            + math.log(token_probability[language] + 1e-12) / tokens
            + math.log(text_probability + TEXT_FLOOR)
        )

    return max(transcripts, key=score)
