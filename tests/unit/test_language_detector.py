"""Whisper base's language detector (CTranslate2) on espeak-ng speech: the Voxtral path's
source of `language`. Loads the real model; no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.multilingual import speak, utterances
from voxtral_gateway.pipeline.language import (
    LanguageDetectorUnavailableError,
    WhisperLanguageDetector,
    load_language_detector,
)
from voxtral_gateway.whisper_ct2 import ct2_model_dir


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> WhisperLanguageDetector:
    loaded = load_language_detector("base", tmp_path_factory.mktemp("ct2"))
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
