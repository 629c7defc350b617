"""VAD detectors on real espeak-ng speech: the batched detector against the package's loop."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bench.corpus import add_noise, synthesize
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.pipeline.segment import VadParams, detect_speech
from voxtral_gateway.pipeline.vad import (
    FRAME_SAMPLES,
    BatchedSileroDetector,
    StockSileroDetector,
    load_detector,
)
from voxtral_gateway.settings import VadSettings

SENTENCES = (
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "Kick the ball straight and follow through.",
)


@pytest.fixture(scope="module")
def stock() -> StockSileroDetector:
    return StockSileroDetector(use_onnx=True)


@pytest.fixture(scope="module")
def batched() -> BatchedSileroDetector:
    detector = load_detector(VadSettings())
    assert isinstance(detector, BatchedSileroDetector)
    return detector


@pytest.fixture(scope="module")
def clean_speech() -> np.ndarray:
    """~100 s of sentences in three voices with 0.3-3 s pauses of digital silence."""
    rng = np.random.default_rng(1)
    voices = [("en-us", 175), ("en-gb", 150), ("en+f3", 200)]
    utterances = [synthesize(text, *voice) for text in SENTENCES for voice in voices]
    parts: list[np.ndarray] = []
    total = 0
    while total < 100 * SAMPLE_RATE_HZ:
        speech = utterances[int(rng.integers(len(utterances)))]
        pause = np.zeros(round(rng.uniform(0.3, 3.0) * SAMPLE_RATE_HZ), dtype=np.float32)
        parts += [speech, pause]
        total += len(speech) + len(pause)
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def noisy_speech(clean_speech: np.ndarray) -> np.ndarray:
    """The same speech under light white noise (25 dB SNR)."""
    return add_noise(clean_speech, 25.0, np.random.default_rng(2))


def _assert_same_boundaries(ours: np.ndarray, theirs: np.ndarray) -> None:
    params = VadParams()
    our_spans = detect_speech(ours, params)
    their_spans = detect_speech(theirs, params)
    assert len(their_spans) > 20
    assert len(our_spans) == len(their_spans)
    for a, b in zip(our_spans, their_spans, strict=True):
        assert abs(a.start_s - b.start_s) <= 0.1
        assert abs(a.end_s - b.end_s) <= 0.1


def test_one_probability_per_started_frame(batched: BatchedSileroDetector) -> None:
    for length in (0, 1, FRAME_SAMPLES - 1, FRAME_SAMPLES, FRAME_SAMPLES + 1, 16_000):
        samples = np.zeros(length, dtype=np.float32)
        assert len(batched.frame_probabilities(samples)) == -(-length // FRAME_SAMPLES)


@pytest.mark.parametrize("rate_hz", [8_000, 22_050, 32_000, 48_000])
def test_rates_other_than_16k_are_rejected(
    batched: BatchedSileroDetector, stock: StockSileroDetector, rate_hz: int
) -> None:
    samples = np.zeros(rate_hz, dtype=np.float32)
    for detector in (batched, stock):
        with pytest.raises(ValueError, match="16000 Hz only"):
            detector.frame_probabilities(samples, sample_rate_hz=rate_hz)


def test_multichannel_input_is_rejected(batched: BatchedSileroDetector) -> None:
    with pytest.raises(ValueError, match="mono"):
        batched.frame_probabilities(np.zeros((2, 16_000), dtype=np.float32))


def test_batched_equals_stock_loop_on_a_short_clip(
    batched: BatchedSileroDetector, stock: StockSileroDetector
) -> None:
    # Under a few warm-ups long, the whole file is one LSTM stream: same maths, same numbers.
    speech = np.concatenate([synthesize(SENTENCES[0], "en-us", 175), np.zeros(8000, np.float32)])
    ours = batched.frame_probabilities(speech)
    theirs = stock.frame_probabilities(speech)
    assert theirs.max() > 0.9  # the clip really has speech
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_batched_boundaries_within_100ms_of_stock_loop(
    batched: BatchedSileroDetector, stock: StockSileroDetector, noisy_speech: np.ndarray
) -> None:
    _assert_same_boundaries(
        batched.frame_probabilities(noisy_speech), stock.frame_probabilities(noisy_speech)
    )


def test_parallel_streams_keep_boundaries_within_100ms(
    stock: StockSileroDetector, clean_speech: np.ndarray
) -> None:
    # Scaled down so 100 s splits into streams (the default warm-up is for noisy audio).
    detector = load_detector(VadSettings(batch_streams=4, stream_warmup_s=8.0))
    ours = detector.frame_probabilities(clean_speech)
    theirs = stock.frame_probabilities(clean_speech)
    # The file really is split: later streams start from zero state, so raw values differ.
    assert np.abs(ours - theirs).max() > 1e-3
    _assert_same_boundaries(ours, theirs)


def test_stock_jit_and_onnx_models_agree(stock: StockSileroDetector) -> None:
    speech = synthesize(SENTENCES[1], "en-gb", 150)
    jit = StockSileroDetector(use_onnx=False)
    np.testing.assert_allclose(
        jit.frame_probabilities(speech), stock.frame_probabilities(speech), atol=1e-3
    )


def test_detector_is_stateless_between_calls(batched: BatchedSileroDetector) -> None:
    speech = synthesize(SENTENCES[2], "en+f3", 200)
    first = batched.frame_probabilities(speech)
    batched.frame_probabilities(np.ones(16_000, dtype=np.float32) * 0.5)
    np.testing.assert_array_equal(batched.frame_probabilities(speech), first)


def test_concurrent_calls_match_sequential_ones(
    batched: BatchedSileroDetector, stock: StockSileroDetector
) -> None:
    # The gateway calls one shared detector from worker threads (asyncio.to_thread).
    clips = [synthesize(text, "en-us", 175) for text in SENTENCES[:4]]
    for detector in (batched, stock):
        expected = [detector.frame_probabilities(clip) for clip in clips]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(detector.frame_probabilities, clips * 3))
        for got, want in zip(results, expected * 3, strict=True):
            np.testing.assert_array_equal(got, want)
