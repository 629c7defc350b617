"""Word timing as a request stage: the runtime's one aligner, loaded by the first request that
needs it, and the per-segment timer the engine fan-out calls as each segment's text arrives.

The service (service.py) decides which requests get it and wires the timer in, so every door
(HTTP in both dialects, RunPod) times words the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.pipeline.align import (
    ALIGN_INSTALL_HINT,
    AlignerUnavailableError,
    WordAligner,
    aligner_installed,
)
from voxtral_gateway.pipeline.records import Segment, Word
from voxtral_gateway.pipeline.transcribe import WordTimer
from voxtral_gateway.settings import AlignSettings, SubtitleSettings
from voxtral_gateway.whisper_ct2 import ModelNotFoundError, ct2_model_dir

if TYPE_CHECKING:
    from voxtral_gateway.options import TranscriptionOptions


class OnDemandAligner:
    """The runtime's `WordAligner`, loaded once (off the event loop) when first asked for."""

    def __init__(self, settings: AlignSettings) -> None:
        self._settings = settings
        self._aligners: dict[str, WordAligner] = {}
        self._loading = asyncio.Lock()

    def model_for(self, language: str | None) -> str:
        """`english_model` for speech known to be English, else `model`."""
        english = self._settings.english_model
        return english if english and language == "en" else self._settings.model

    async def get(self, model: str | None = None) -> WordAligner:
        """The loaded aligner (`model`, default the settings' `model`); a 400 naming
        `timestamp_granularities` if it cannot be loaded."""
        settings = self._settings
        name = model or settings.model
        async with self._loading:
            if name not in self._aligners:
                try:
                    model_dir = await asyncio.to_thread(
                        ct2_model_dir, name, settings.cache_dir.expanduser()
                    )
                    self._aligners[name] = await asyncio.to_thread(
                        WordAligner, model_dir, threads=settings.threads
                    )
                except (AlignerUnavailableError, ModelNotFoundError) as exc:
                    raise InvalidRequestError(
                        f"word timestamps are not available: {exc}",
                        param="timestamp_granularities",
                    ) from exc
        return self._aligners[name]

    def timer(self, *, language: str | None, on_timed: Callable[[float], None]) -> WordTimer:
        """Times one segment's text in a worker thread, in the segment's language when known
        (else the request's); `on_timed` gets the seconds it took (queueing included)."""

        async def time_words(
            segment: Segment, text: str, segment_language: str | None = None
        ) -> tuple[Word, ...]:
            spoken = segment_language or language
            aligner = await self.get(self.model_for(spoken))
            started = time.perf_counter()
            words = await asyncio.to_thread(
                aligner.align, segment.samples, text, offset_s=segment.start_s, language=spoken
            )
            on_timed(time.perf_counter() - started)
            return words

        return time_words


def with_word_timing(
    options: TranscriptionOptions,
    *,
    words: bool,
    cues: bool,
    subtitles: SubtitleSettings,
    installed: bool | None = None,
) -> TranscriptionOptions:
    """Time words when asked (`words`), or for subtitle `cues` if the aligner is installed;
    without it, cues come from VAD segments no longer than a cue. 400 for words without it."""
    installed = aligner_installed() if installed is None else installed
    if words:
        if not installed:
            raise InvalidRequestError(ALIGN_INSTALL_HINT, param="timestamp_granularities")
        return replace(options, word_timestamps=True)
    if cues:
        if installed:
            return replace(options, word_timestamps=True)
        return replace(options, max_segment_s=subtitles.cue_max_s)
    return options
