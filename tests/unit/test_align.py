"""The aligner on real espeak-ng audio with the real Whisper tiny.en weights (CTranslate2).

Words are synthesised one at a time and placed at known offsets, so every edge is known.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.audio import SAMPLE_RATE_HZ, synthesize
from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.options import TranscriptionOptions
from voxtral_gateway.pipeline.align import WordAligner, split_words
from voxtral_gateway.pipeline.word_timing import with_word_timing
from voxtral_gateway.settings import SubtitleSettings
from voxtral_gateway.whisper_ct2 import ModelNotFoundError, ct2_model_dir


@pytest.fixture(scope="module")
def tiny_aligner(tmp_path_factory: pytest.TempPathFactory) -> WordAligner:
    return WordAligner(ct2_model_dir("tiny.en", tmp_path_factory.mktemp("ct2")))


def test_split_words_keeps_punctuation_and_splits_no_space_scripts() -> None:
    assert [p.text for p in split_words("  Hello,  world. ")] == ["Hello,", "world."]
    pieces = split_words("Tokyo 東京です")
    assert [p.text for p in pieces] == ["Tokyo", "東", "京", "で", "す"]
    assert [p.spaced for p in pieces] == [True, True, False, False, False]


def test_words_land_on_known_edges_and_join_to_the_text(tiny_aligner: WordAligner) -> None:
    text = "please call the office before noon tomorrow"
    gaps_s = [0.6, 0.0, 0.3, 0.0, 0.5, 0.0, 0.4]
    pieces, truth, cursor = [], [], 0.0
    for word, gap in zip(text.split(), gaps_s, strict=True):
        pieces.append(np.zeros(round(gap * SAMPLE_RATE_HZ), np.float32))
        cursor += round(gap * SAMPLE_RATE_HZ)
        voice = synthesize(word)
        pieces.append(voice)
        truth.append((cursor / SAMPLE_RATE_HZ, (cursor + len(voice)) / SAMPLE_RATE_HZ))
        cursor += len(voice)
    pieces.append(np.zeros(SAMPLE_RATE_HZ // 2, np.float32))
    samples = np.concatenate(pieces)

    words = tiny_aligner.align(samples, text, offset_s=100.0, language="en")

    assert " ".join(w.word for w in words) == text
    starts = [w.start_s for w in words]
    assert starts == sorted(starts)
    assert all(100.0 <= w.start_s <= w.end_s <= 100.0 + len(samples) / 16_000 for w in words)
    errors = np.abs(
        [
            e - 100.0 - t
            for w, (s, e2) in zip(words, truth, strict=True)
            for e, t in ((w.start_s, s), (w.end_s, e2))
        ]
    )
    # Raw DTW boundaries (no pause snapping) give a median ~0.14 s here, p90 ~0.5 s.
    assert np.median(errors) <= 0.05 and np.percentile(errors, 90) <= 0.3


def test_empty_text_or_audio_gives_no_words(tiny_aligner: WordAligner) -> None:
    assert tiny_aligner.align(np.zeros(16_000, np.float32), "  ", offset_s=0, language=None) == ()
    assert tiny_aligner.align(np.zeros(0, np.float32), "hi", offset_s=0, language=None) == ()


def test_base_model_is_assembled_once_from_its_two_packages(tmp_path: Path) -> None:
    folder = ct2_model_dir("base", tmp_path)
    assert (folder / "model.bin").stat().st_size > 100_000_000
    assert ct2_model_dir("base", tmp_path) == folder
    assert [p.name for p in folder.iterdir() if p.name.startswith("model.bin.")] == []
    with pytest.raises(ModelNotFoundError):
        ct2_model_dir(str(tmp_path / "nothing-here"), tmp_path)


def _timing(installed: bool, *, words: bool = False, cues: bool = False) -> TranscriptionOptions:
    return with_word_timing(
        TranscriptionOptions(),
        words=words,
        cues=cues,
        subtitles=SubtitleSettings(),
        installed=installed,
    )


def test_word_granularity_without_the_aligner_is_a_400_saying_how_to_enable_it() -> None:
    with pytest.raises(InvalidRequestError, match=r"pip install") as caught:
        _timing(False, words=True)
    assert caught.value.param == "timestamp_granularities"
    assert _timing(True, words=True).word_timestamps


def test_subtitles_without_the_aligner_use_cue_sized_segments() -> None:
    assert _timing(False, cues=True) == dataclasses.replace(
        TranscriptionOptions(), max_segment_s=7.0
    )
    timed = _timing(True, cues=True)
    assert timed.word_timestamps and timed.max_segment_s is None
    assert not _timing(True).word_timestamps


def test_english_speech_is_timed_with_the_english_model() -> None:
    from voxtral_gateway.pipeline.word_timing import OnDemandAligner
    from voxtral_gateway.settings import AlignSettings

    aligner = OnDemandAligner(AlignSettings())
    assert aligner.model_for("en") == "tiny.en"
    assert aligner.model_for("de") == "base"
    assert aligner.model_for(None) == "base"
    assert OnDemandAligner(AlignSettings(english_model=None)).model_for("en") == "base"
