"""Choosing among candidate languages by how well Whisper can transcribe the audio in each.

Whisper's language token alone (one decoder step) is weak on unusual voices: Whisper base
gives espeak-ng's French voice 0.001-0.1 for `fr`. Decoding a few tokens in each candidate
language adds evidence: in the right language the first words come out with a higher
probability. Each candidate is scored by its joint log-probability per decoded token,

    score(L) = (log p(<|L|> | audio) + sum over the first k tokens of log p(token | L, audio)) / k

(CTranslate2's greedy score is the mean over the decoded tokens, so the token's log-probability
gets weight 1/k). k = `DECODED_TOKENS`: longer greedy decodes run into repetition loops, whose
repeated tokens are very probable and favour whichever language loops (often English).
Measured in bench/results/languages-cpu-whisper-base/detection.md.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

DECODED_TOKENS = 5
"""Tokens decoded per candidate language (chosen on the 13-clip corpus, see detection.md)."""


def decoded_log_likelihoods(
    ctranslate2: Any,
    model: Any,
    encoded: Any,
    languages: Sequence[str],
    tokens: int = DECODED_TOKENS,
) -> dict[str, float]:
    """Mean log-probability of the first `tokens` greedy tokens of a transcription of
    `encoded` (one clip's encoder output, `[1, 1500, d]`) in each of `languages`, all
    decoded in one batch."""
    results = greedy_decode_in_each(
        ctranslate2, model, encoded, languages, tokens, return_scores=True
    )
    return {language: result.scores[0] for language, result in zip(languages, results, strict=True)}


def greedy_decode_in_each(
    ctranslate2: Any,
    model: Any,
    encoded: Any,
    languages: Sequence[str],
    tokens: int,
    **generate_options: Any,
) -> list[Any]:
    """CTranslate2's greedy results of `tokens` tokens transcribing `encoded` (one clip's
    encoder output, `[1, 1500, d]`) in each of `languages`, in one batch, in their order."""
    prompts = [
        ["<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>"]
        for language in languages
    ]
    batch = ctranslate2.StorageView.from_array(
        np.repeat(np.asarray(encoded), len(languages), axis=0)
    )
    return model.generate(
        batch,
        prompts,
        beam_size=1,
        # CTranslate2 4.8 decodes at most min(max_length // 2, max_length - 3) tokens after
        # this prompt (measured: 4 -> 1, 5 -> 2, 10 -> 5).
        max_length=max(2 * tokens, tokens + 3),
        **generate_options,
    )


def most_likely(
    probabilities: Sequence[tuple[str, float]],
    likelihoods: dict[str, float],
    tokens: int = DECODED_TOKENS,
) -> str:
    """The language of `likelihoods` with the best joint score (module docstring), from the
    language token's `probabilities` and the decodes' mean log-probabilities."""
    token_probability = dict(probabilities)

    def score(language: str) -> float:
        return likelihoods[language] + math.log(token_probability[language] + 1e-12) / tokens

    return max(likelihoods, key=score)


def scored_languages(
    probabilities: Sequence[tuple[str, float]], candidates: Collection[str]
) -> list[str]:
    """The candidates the model has a language token for, in the order of `probabilities`."""
    return [language for language, _p in probabilities if language in candidates]
