"""Chunked decode -> VAD -> segments (pipeline/stream.py) on real espeak-ng speech files:
the same segments as the whole-file path, with memory bounded by the chunk, not the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures.audio import AudioClip
from tests.whole_file import decode_whole, fixed_window_segments, vad_segments
from voxtral_gateway.pipeline.decode import decode_blocks
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Audio, Segment
from voxtral_gateway.pipeline.segment import vad_params
from voxtral_gateway.pipeline.stream import (
    FixedWindowSegmenter,
    Segmenter,
    VadSegmenter,
    segment_stream,
)
from voxtral_gateway.pipeline.vad import SpeechDetector, load_detector
from voxtral_gateway.settings import LimitSettings, VadSettings

CHUNK_S = 60.0
WARMUP_S = 30.0


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return load_detector(VadSettings())


def _stream(data: bytes, segmenter: Segmenter, chunk_s: float) -> tuple[list[Segment], list]:
    """Decode `data` block by block through `segmenter`: (all segments, the chunks)."""
    chunks = list(segment_stream(decode_blocks(data, LimitSettings()), segmenter, chunk_s=chunk_s))
    return [s for b in chunks for s in b.segments], chunks


def test_a_file_within_one_chunk_is_segmented_exactly_as_a_whole(
    speech_60s: AudioClip, detector: SpeechDetector
) -> None:
    data = speech_60s.read_bytes()
    params = vad_params(VadSettings())
    whole = vad_segments(decode_whole(data), detector, params)
    streamed, chunks = _stream(
        data, VadSegmenter(detector, params, warmup_s=WARMUP_S), chunk_s=120.0
    )
    assert len(chunks) == 1 and chunks[0].last
    assert [(s.index, s.start_s, s.end_s) for s in streamed] == [
        (s.index, s.start_s, s.end_s) for s in whole
    ]
    for ours, theirs in zip(streamed, whole, strict=True):
        np.testing.assert_array_equal(ours.samples, theirs.samples)


@pytest.mark.parametrize("chunk_s", [120.0, 15.0])
def test_only_a_file_within_one_chunk_is_offered_whole_before_vad(
    speech_60s: AudioClip, detector: SpeechDetector, chunk_s: float
) -> None:
    """The head start's guarantee: `on_whole_file` sees the whole file before VAD runs, and
    is never called for a file decoded in several chunks."""
    offered: list[np.ndarray] = []
    segmenter = VadSegmenter(
        detector, vad_params(VadSettings()), warmup_s=WARMUP_S, on_whole_file=offered.append
    )
    data = speech_60s.read_bytes()
    _, chunks = _stream(data, segmenter, chunk_s=chunk_s)
    one_chunk = chunk_s > speech_60s.duration_s
    assert (len(chunks) == 1) is one_chunk
    if one_chunk:
        assert len(offered) == 1
        np.testing.assert_array_equal(offered[0], decode_whole(data).samples)
    else:
        assert offered == []


def test_a_long_file_in_chunks_gives_the_whole_file_segments_in_bounded_memory(
    speech_10min: AudioClip, detector: SpeechDetector
) -> None:
    samples, rate = sf.read(speech_10min.path, dtype="float32")
    assert rate == SAMPLE_RATE_HZ
    params = vad_params(VadSettings())
    # The chunked detector carries its LSTM state: exactly one pass over the whole file.
    whole = vad_segments(Audio(samples), load_detector(VadSettings(batch_streams=1)), params)
    segmenter = VadSegmenter(detector, params, warmup_s=WARMUP_S)
    peak_retained = 0
    streamed: list[Segment] = []
    blocks = iter(np.array_split(samples, len(samples) // 65_536))
    chunks = 0
    for chunk in segment_stream(blocks, segmenter, chunk_s=CHUNK_S):
        chunks += 1
        streamed += chunk.segments
        peak_retained = max(peak_retained, segmenter.retained_samples)

    assert chunks >= 10 and len(whole) >= 20
    assert [(s.index, s.start_s, s.end_s) for s in streamed] == [
        (s.index, s.start_s, s.end_s) for s in whole
    ]
    for ours, theirs in zip(streamed, whole, strict=True):
        np.testing.assert_array_equal(ours.samples, theirs.samples)
    # Memory: the chunk and two windows of unfinished speech, not 10 minutes.
    bound_s = CHUNK_S + 2 * params.max_segment_s + 65_536 / SAMPLE_RATE_HZ
    assert peak_retained / SAMPLE_RATE_HZ <= bound_s, peak_retained / SAMPLE_RATE_HZ


def test_a_detector_without_state_carry_warms_up_each_chunk(speech_60s: AudioClip) -> None:
    """The stock Silero loop cannot continue a stream: each chunk re-runs the audio before it."""
    stock = load_detector(VadSettings(detector="stock"))
    params = vad_params(VadSettings())
    data = speech_60s.read_bytes()
    whole = vad_segments(decode_whole(data), stock, params)
    streamed, chunks = _stream(data, VadSegmenter(stock, params, warmup_s=10.0), chunk_s=15.0)
    assert len(chunks) >= 4 and len(streamed) == len(whole) >= 2
    for ours, theirs in zip(streamed, whole, strict=True):
        assert abs(ours.start_s - theirs.start_s) <= 0.1 and abs(ours.end_s - theirs.end_s) <= 0.1


def test_long_silence_keeps_nothing_and_finds_nothing(detector: SpeechDetector) -> None:
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(300 * SAMPLE_RATE_HZ) * 0.003).astype(np.float32)
    segmenter = VadSegmenter(detector, vad_params(VadSettings()), warmup_s=WARMUP_S)
    blocks = iter(np.array_split(hiss, 300))
    peak = 0
    for chunk in segment_stream(blocks, segmenter, chunk_s=CHUNK_S):
        assert chunk.segments == []
        peak = max(peak, segmenter.retained_samples)
    assert peak / SAMPLE_RATE_HZ <= CHUNK_S + 5


def test_vad_off_windows_match_the_whole_file_cut(speech_60s: AudioClip) -> None:
    data = speech_60s.read_bytes()
    whole = fixed_window_segments(decode_whole(data), 25.0)
    streamed, chunks = _stream(data, FixedWindowSegmenter(25.0), chunk_s=20.0)
    assert len(chunks) >= 3
    assert [(s.index, s.start_s, s.end_s) for s in streamed] == [
        (s.index, s.start_s, s.end_s) for s in whole
    ]
    for ours, theirs in zip(streamed, whole, strict=True):
        np.testing.assert_array_equal(ours.samples, theirs.samples)


def test_chunks_account_for_every_decoded_second(speech_60s: AudioClip) -> None:
    _, chunks = _stream(speech_60s.read_bytes(), FixedWindowSegmenter(30.0), chunk_s=10.0)
    assert chunks[-1].last and not any(b.last for b in chunks[:-1])
    assert sum(b.added_s for b in chunks) == pytest.approx(chunks[-1].decoded_s)
    assert chunks[-1].decoded_s == pytest.approx(speech_60s.duration_s, abs=1e-3)


def test_vad_segments_carry_their_speech_probability_fixed_windows_none(
    speech_60s: AudioClip, detector: SpeechDetector
) -> None:
    """no_speech_prob's source: the mean Silero probability over each segment's frames, a
    measurement that differs per segment; without VAD nothing is known."""
    data = speech_60s.read_bytes()
    params = vad_params(VadSettings())
    segments, _ = _stream(data, VadSegmenter(detector, params, warmup_s=WARMUP_S), chunk_s=15.0)
    probabilities = [s.speech_prob for s in segments]
    assert all(p is not None and 0.3 < p <= 1.0 for p in probabilities)
    assert len(set(probabilities)) == len(probabilities)
    windows, _ = _stream(data, FixedWindowSegmenter(30.0), chunk_s=15.0)
    assert [s.speech_prob for s in windows] == [None, None]
