"""Whisper base's language detector (CTranslate2) on espeak-ng speech: the Voxtral path's
source of `language`, and the chooser among `language_candidates` (by the language token, by
the likelihood of a short decode in each candidate, or by that likelihood and a text language
identifier's reading of each decode). Loads the real models; no engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from bench.multilingual import Utterance, speak, utterances
from voxtral_gateway.pipeline.language import (
    LanguageDetectorUnavailableError,
    WhisperLanguageDetector,
    checked_candidates,
    load_language_detector,
    most_probable,
)
from voxtral_gateway.pipeline.language_scoring import most_likely
from voxtral_gateway.pipeline.language_text import (
    TextLanguageIdentifier,
    text_identifier_for,
    token_text,
)
from voxtral_gateway.pipeline.transcribe import DecodingOptions, with_chosen_language
from voxtral_gateway.whisper_ct2 import ct2_model_dir


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ct2")


@pytest.fixture(scope="module")
def detector(cache_dir: Path) -> WhisperLanguageDetector:
    loaded = load_language_detector("base", cache_dir)
    assert loaded is not None
    return loaded


def test_detects_the_language_spoken(detector: WhisperLanguageDetector) -> None:
    for utterance in utterances(("de", "es", "it"), per_language=1):
        assert detector.detect(speak(utterance)) == utterance.language


def test_english_only_whisper_cannot_be_a_detector(tmp_path: Path) -> None:
    with pytest.raises(LanguageDetectorUnavailableError):
        WhisperLanguageDetector(ct2_model_dir("tiny.en", tmp_path))


def test_no_model_configured_means_no_detector(tmp_path: Path) -> None:
    assert load_language_detector(None, tmp_path) is None


# The corpus's second French sentence (voice fr+f2): Whisper base hears it as Korean
# (ko 0.18, fr 0.11; bench/results/languages-cpu-whisper-base/detection.md).
FRENCH_HEARD_AS_KOREAN = utterances(("fr",), per_language=2)[1]
CORPUS_LANGUAGES = ("de", "fr", "es", "it", "pt", "nl", "en")


def test_candidates_keep_the_pick_among_the_expected_languages(
    detector: WhisperLanguageDetector, cache_dir: Path
) -> None:
    samples = speak(FRENCH_HEARD_AS_KOREAN)
    probabilities = detector.probabilities(samples)
    assert len(probabilities) == 99 and probabilities[0][0] != "fr"
    restricted = load_language_detector("base", cache_dir, candidates=CORPUS_LANGUAGES)
    assert restricted is not None
    assert restricted.detect(samples) == "fr"


# The same sentence in espeak-ng's default French voice: among the corpus's languages Whisper
# base's language token prefers English (en 0.04, fr 0.001), while five tokens decoded in each
# language make French the likeliest (bench/results/languages-cpu-whisper-base/detection.md).
FRENCH_HEARD_AS_ENGLISH = Utterance(
    "fr", "fr", FRENCH_HEARD_AS_KOREAN.text, FRENCH_HEARD_AS_KOREAN.english
)


def test_likelihood_finds_the_language_the_token_misses(cache_dir: Path) -> None:
    samples = speak(FRENCH_HEARD_AS_ENGLISH)
    by_token = load_language_detector("base", cache_dir, CORPUS_LANGUAGES, method="token")
    by_likelihood = load_language_detector("base", cache_dir, CORPUS_LANGUAGES, method="likelihood")
    assert by_token is not None and by_likelihood is not None
    assert by_token.detect(samples) == "en"
    assert by_likelihood.detect(samples) == "fr"
    # Even one or two decoded tokens are scored (CTranslate2's max_length is not a token count).
    for tokens in (1, 2):
        _, likelihoods = by_likelihood.likelihoods(samples, ["fr", "en"], tokens)
        assert all(score < 0 for score in likelihoods.values()), (tokens, likelihoods)


# The corpus's second Dutch sentence: by likelihood English wins, its decode "the marker, or
# the hook" being fluent English; the Dutch decode ("de maak erop de boek") is the one a text
# identifier reads as its own language (bench/results/languages-cpu-whisper-base/detection.md).
DUTCH_HEARD_AS_ENGLISH = utterances(("nl",), per_language=2)[1]


def test_text_check_finds_the_language_the_likelihood_misses(cache_dir: Path) -> None:
    samples = speak(DUTCH_HEARD_AS_ENGLISH)
    by_likelihood = load_language_detector("base", cache_dir, CORPUS_LANGUAGES, method="likelihood")
    by_text = load_language_detector("base", cache_dir, CORPUS_LANGUAGES)
    assert by_likelihood is not None and by_text is not None
    assert by_text.method == "text"  # the default
    assert by_likelihood.detect(samples) == "en"
    assert by_text.detect(samples) == "nl"
    # One decode batch gives both the text and the 5-token likelihood.
    _, likelihoods = by_text.likelihoods(samples, ["nl", "en"])
    _, transcripts = by_text.transcripts(samples, ["nl", "en"])
    for language in ("nl", "en"):
        assert transcripts[language].likelihood == pytest.approx(likelihoods[language], abs=1e-4)
        assert transcripts[language].text


def test_text_identifier_reads_the_candidates_languages() -> None:
    identifier = TextLanguageIdentifier(["de", "nl", "en"])
    probabilities = identifier.probabilities("Meine Schwester arbeitet in einem Krankenhaus")
    assert max(probabilities, key=probabilities.__getitem__) == "de"
    assert set(probabilities) == {"de", "nl", "en"}


def test_a_candidate_the_text_identifier_lacks_falls_back_to_likelihood() -> None:
    assert text_identifier_for(["de", "no"]) is None  # lingua has nb/nn, not `no`


def test_token_text_undoes_the_byte_level_bpe() -> None:
    assert token_text(["<|nl|>", "Ġde", "Ġmaak", "Ġcaf", "Ã©", "<|endoftext|>"]) == "de maak café"


def test_most_likely_weighs_the_token_by_one_over_the_decoded_tokens() -> None:
    probabilities = [("en", 0.5), ("fr", 0.005)]
    # Per token, French decodes 1.0 better; its token is log(100) = 4.6 worse, 0.92 per token.
    assert most_likely(probabilities, {"en": -2.0, "fr": -1.0}, tokens=5) == "fr"
    assert most_likely(probabilities, {"en": -2.0, "fr": -1.0}, tokens=4) == "en"


def test_most_probable_reads_the_list_in_order() -> None:
    probabilities = [("th", 0.5), ("en", 0.3), ("fr", 0.2)]
    assert most_probable(probabilities) == "th"
    assert most_probable(probabilities, {"fr", "en"}) == "en"
    assert most_probable(probabilities, {"fr"}) == "fr"
    assert most_probable(probabilities, {"de"}) is None


def test_candidates_must_be_languages_the_engines_accept() -> None:
    assert checked_candidates(["DE", "fr"]) == {"de", "fr"}
    with pytest.raises(ValueError, match="xx"):
        checked_candidates(["de", "xx"])


def test_candidates_without_a_detector_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(LanguageDetectorUnavailableError, match="language_detector_model"):
        load_language_detector(None, tmp_path, candidates=["de", "fr"])


def test_a_given_language_is_never_replaced_by_the_chooser() -> None:
    async def choose(samples: np.ndarray) -> str:
        return "fr"

    samples = np.zeros(16_000, dtype=np.float32)
    given = DecodingOptions(language="de")
    assert asyncio.run(with_chosen_language(given, samples, choose)) is given
    chosen = asyncio.run(with_chosen_language(DecodingOptions(), samples, choose))
    assert chosen.language == "fr"
    assert asyncio.run(with_chosen_language(DecodingOptions(), samples, None)).language is None
