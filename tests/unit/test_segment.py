"""Segment stage: pure span maths, and real espeak-ng speech through the batched detector."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from silero_vad import get_speech_timestamps_from_probs

from bench.corpus import synthesize
from tests.whole_file import fixed_window_segments, vad_segments
from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Audio, Span
from voxtral_gateway.pipeline.segment import (
    VadParams,
    detect_speech,
    merge_spans,
    vad_params,
)
from voxtral_gateway.pipeline.vad import FRAME_S, SpeechDetector, load_detector
from voxtral_gateway.settings import VadSettings

SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
)
PAUSES_S = (0.6, 1.5, 0.8, 2.0, 0.7)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE_HZ), dtype=np.float32)


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return load_detector(VadSettings())


@pytest.fixture(scope="module")
def spoken() -> tuple[Audio, list[Span]]:
    """Six espeak-ng sentences with known pauses between them; returns audio + sentence spans."""
    parts = [_silence(0.5)]
    sentences: list[Span] = []
    position = len(parts[0])
    for index, text in enumerate(SENTENCES):
        speech = synthesize(text, "en-us", 175)
        sentences.append(Span(position / SAMPLE_RATE_HZ, (position + len(speech)) / SAMPLE_RATE_HZ))
        pause = _silence(PAUSES_S[index] if index < len(PAUSES_S) else 0.5)
        parts += [speech, pause]
        position += len(speech) + len(pause)
    return Audio(np.concatenate(parts)), sentences


def _params(**changes: float) -> VadParams:
    return VadParams(**{"speech_pad_ms": 200, "max_segment_s": 30.0, **changes})


def _approx(spans: list[Span]) -> list[tuple[float, float]]:
    return [(pytest.approx(s.start_s), pytest.approx(s.end_s)) for s in spans]


def _pairs(spans: list[Span]) -> list[tuple[float, float]]:
    return [(s.start_s, s.end_s) for s in spans]


# --- merge_spans: pure cases -------------------------------------------------------------


def test_merge_keeps_everything_that_fits_in_one_padded_segment() -> None:
    spans = [Span(1.0, 2.0), Span(3.0, 4.0), Span(6.0, 7.5)]
    merged = merge_spans(spans, max_segment_s=30.0, speech_pad_s=0.2, duration_s=10.0)
    assert _pairs(merged) == _approx([Span(0.8, 7.7)])


def test_merge_cuts_only_where_the_window_is_full() -> None:
    # Pauses after the first three spans: 1 s, 3 s, 0.5 s. The fourth span does not fit in a
    # 20 s window, so the cut goes in the last pause before it, whatever its length: every
    # cut earlier than that could cost an extra engine window later in the file.
    spans = [Span(0.0, 5.0), Span(6.0, 10.0), Span(13.0, 17.0), Span(17.5, 22.0)]
    merged = merge_spans(spans, max_segment_s=20.0, speech_pad_s=0.0, duration_s=25.0)
    assert _pairs(merged) == _approx([Span(0.0, 17.0), Span(17.5, 22.0)])


def test_merge_keeps_a_clip_of_one_window_in_one_segment() -> None:
    # The H200 run's 30 s clips: speech from 0.1 s to 29.9 s. Padding that was reserved
    # inside the window (29.6 s of room) split each in two; now the padding gives way.
    spans = [Span(0.1, 12.0), Span(12.6, 29.9)]
    merged = merge_spans(spans, max_segment_s=30.0, speech_pad_s=0.2, duration_s=30.0)
    assert len(merged) == 1
    assert merged[0].duration_s <= 30.0
    assert merged[0].start_s <= 0.1 and merged[0].end_s >= 29.9


def _fewest_groups(spans: list[Span], limit_s: float) -> int:
    """Brute force: fewest groups of consecutive spans, each no longer than limit_s."""
    best = [0] + [len(spans) + 1] * len(spans)  # best[i]: groups for the first i spans
    for end in range(1, len(spans) + 1):
        for start in range(end):
            if spans[end - 1].end_s - spans[start].start_s <= limit_s:
                best[end] = min(best[end], best[start] + 1)
    return best[-1]


@pytest.mark.parametrize("seed", range(20))
def test_merge_gives_the_fewest_windows_any_cut_in_pauses_can(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 40))
    gaps = rng.uniform(0.3, 5.0, size=count)
    lengths = rng.uniform(0.3, 12.0, size=count)
    spans, position = [], 0.0
    for gap, length in zip(gaps, lengths, strict=True):
        spans.append(Span(position + gap, position + gap + length))
        position += gap + length
    window_s = 30.0
    merged = merge_spans(spans, max_segment_s=window_s, speech_pad_s=0.2, duration_s=position + 1)
    assert len(merged) == _fewest_groups(spans, window_s - 1 / SAMPLE_RATE_HZ)
    assert all(m.duration_s <= window_s for m in merged)
    # Never more windows than the speech's extent needs when cuts in pauses are free.
    extent_s = spans[-1].end_s - spans[0].start_s
    assert len(merged) <= 2 * np.ceil(extent_s / window_s)


def test_merge_never_exceeds_window_and_keeps_order() -> None:
    rng = np.random.default_rng(7)
    starts = np.cumsum(rng.uniform(0.2, 4.0, size=300))
    spans = [
        Span(float(s), float(s + d))
        for s, d in zip(starts, rng.uniform(0.3, 3.0, 300), strict=True)
    ]
    spans = [a for a, b in pairwise(spans) if a.end_s < b.start_s]
    merged = merge_spans(spans, max_segment_s=12.0, speech_pad_s=0.3, duration_s=2000.0)
    assert all(m.duration_s <= 12.0 for m in merged)
    assert all(a.end_s <= b.start_s for a, b in pairwise(merged))
    # Every speech span lies wholly inside one segment: nothing dropped, nothing split.
    for span in spans:
        assert sum(m.start_s <= span.start_s and span.end_s <= m.end_s for m in merged) == 1


def test_merge_pads_without_overlap_or_running_past_the_file() -> None:
    spans = [Span(0.1, 2.0), Span(2.2, 4.5), Span(9.0, 9.9)]
    merged = merge_spans(spans, max_segment_s=4.3, speech_pad_s=0.25, duration_s=10.0)
    # The first two don't fit together (4.4 s > 4.3 s): they share the 0.2 s gap.
    assert _pairs(merged) == _approx([Span(0.0, 2.1), Span(2.1, 4.75), Span(8.75, 10.0)])


def test_merge_trims_padding_to_the_window() -> None:
    # 3.9 s of speech in a 4 s window: 0.1 s of padding is left, taken evenly from both sides
    # as far as the file's start allows (0.1 s before the speech, so 0.05 s each side).
    merged = merge_spans([Span(0.1, 4.0)], max_segment_s=4.0, speech_pad_s=0.25, duration_s=10.0)
    assert merged[0].duration_s <= 4.0
    assert _pairs(merged) == [(pytest.approx(0.05, abs=1e-4), pytest.approx(4.05, abs=1e-4))]


def test_merge_splits_long_region_hard_without_probabilities() -> None:
    merged = merge_spans([Span(0.0, 70.0)], max_segment_s=30.0, speech_pad_s=0.0, duration_s=70)
    assert len(merged) == 3
    assert all(m.duration_s <= 30.0 for m in merged)
    assert merged[0].start_s == 0.0 and merged[-1].end_s == 70.0
    assert all(a.end_s == b.start_s for a, b in pairwise(merged))


def test_merge_splits_long_region_at_lowest_probability_frame() -> None:
    frames = round(50.0 / FRAME_S)
    probabilities = np.full(frames, 0.95, dtype=np.float32)
    dip = round(21.0 / FRAME_S)
    probabilities[dip] = 0.2  # the quietest moment, inside the first window's second half
    merged = merge_spans(
        [Span(0.0, 50.0)],
        max_segment_s=30.0,
        speech_pad_s=0.0,
        duration_s=50.0,
        probabilities=probabilities,
    )
    assert merged[0].end_s == pytest.approx(dip * FRAME_S)
    assert merged[1].start_s == merged[0].end_s


def test_merge_of_no_spans_is_empty() -> None:
    assert merge_spans([], max_segment_s=30.0, speech_pad_s=0.2, duration_s=10.0) == []


def test_merge_rejects_padding_that_leaves_no_room() -> None:
    with pytest.raises(ValueError, match="padding"):
        merge_spans([Span(0, 1)], max_segment_s=2.0, speech_pad_s=0.5, duration_s=3.0)


# --- detect_speech -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_detect_speech_matches_silero_state_machine(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Smooth random probabilities: runs of speech and pause with hesitation near the threshold.
    steps = rng.choice([0.05, 0.3, 0.4, 0.55, 0.9], size=400)
    probabilities = np.repeat(steps, rng.integers(1, 30, size=400))[:6000].astype(np.float32)
    params = _params(threshold=0.5, min_speech_ms=250, min_silence_ms=300)
    ours = detect_speech(probabilities, params)
    theirs = get_speech_timestamps_from_probs(
        probabilities.tolist(),
        threshold=0.5,
        min_speech_duration_ms=250,
        min_silence_duration_ms=300,
        speech_pad_ms=0,
    )
    assert len(ours) > 5
    assert [(round(s.start_s * 16000), round(s.end_s * 16000)) for s in ours] == [
        (t["start"], t["end"]) for t in theirs
    ]


def test_detect_speech_hysteresis_keeps_speech_through_a_dip_above_exit_threshold() -> None:
    probabilities = np.array([0.0] * 5 + [0.9] * 20 + [0.4] * 30 + [0.9] * 20 + [0.0] * 30)
    spans = detect_speech(probabilities, _params(threshold=0.5, min_silence_ms=100))
    assert _pairs(spans) == _approx([Span(5 * FRAME_S, 75 * FRAME_S)])
    # Same dip below the exit threshold (0.35) is a pause long enough to split.
    probabilities[25:55] = 0.3
    spans = detect_speech(probabilities, _params(threshold=0.5, min_silence_ms=100))
    expected = [Span(5 * FRAME_S, 25 * FRAME_S), Span(55 * FRAME_S, 75 * FRAME_S)]
    assert _pairs(spans) == _approx(expected)


def test_detect_speech_drops_clicks_shorter_than_min_speech() -> None:
    probabilities = np.array([0.0] * 10 + [0.9] * 5 + [0.0] * 40)  # 160 ms of "speech"
    assert detect_speech(probabilities, _params(min_speech_ms=250)) == []
    assert len(detect_speech(probabilities, _params(min_speech_ms=100))) == 1


# --- vad_params ---------------------------------------------------------------------------


def test_vad_params_maps_openai_server_vad_fields() -> None:
    params = vad_params(
        VadSettings(),
        {"type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 100,
         "silence_duration_ms": 800},
    )  # fmt: skip
    assert (params.threshold, params.speech_pad_ms, params.min_silence_ms) == (0.7, 100, 800)
    assert params.neg_threshold == pytest.approx(0.55)
    assert params.max_segment_s == VadSettings().segment_max_s


def test_vad_params_defaults_come_from_settings() -> None:
    settings = VadSettings(threshold=0.6, min_silence_ms=500, segment_max_s=20.0)
    params = vad_params(settings, None)
    assert (params.threshold, params.min_silence_ms, params.max_segment_s) == (0.6, 500, 20.0)


@pytest.mark.parametrize(
    "overrides",
    [{"silence_ms": 100}, {"threshold": 1.5}, {"threshold": "high"}, {"prefix_padding_ms": -1},
     {"prefix_padding_ms": 7500}],
)  # fmt: skip
def test_vad_params_rejects_bad_overrides(overrides: dict) -> None:
    with pytest.raises(InvalidRequestError) as info:
        vad_params(VadSettings(), overrides)
    assert info.value.param == "chunking_strategy"


# --- fixed windows (VAD off) ---------------------------------------------------------------


def test_fixed_windows_cover_the_file_back_to_back() -> None:
    audio = Audio(np.arange(int(7.5 * SAMPLE_RATE_HZ), dtype=np.float32))
    segments = fixed_window_segments(audio, 2.0)
    assert [(s.index, s.start_s, s.end_s) for s in segments] == [
        (0, 0.0, 2.0), (1, 2.0, 4.0), (2, 4.0, 6.0), (3, 6.0, 7.5)
    ]  # fmt: skip
    assert np.array_equal(np.concatenate([s.samples for s in segments]), audio.samples)


def test_fixed_windows_of_empty_audio_is_empty() -> None:
    assert fixed_window_segments(Audio(np.zeros(0, dtype=np.float32)), 30.0) == []


# --- VAD segments on real speech ----------------------------------------------------------


def test_silence_only_gives_no_segments(detector: SpeechDetector) -> None:
    rng = np.random.default_rng(0)
    quiet_noise = (rng.standard_normal(20 * SAMPLE_RATE_HZ) * 0.003).astype(np.float32)
    assert vad_segments(Audio(_silence(20.0)), detector, _params()) == []
    assert vad_segments(Audio(quiet_noise), detector, _params()) == []
    assert vad_segments(Audio(_silence(0.0)), detector, _params()) == []


def test_every_sentence_lands_whole_in_one_segment(
    detector: SpeechDetector, spoken: tuple[Audio, list[Span]]
) -> None:
    audio, sentences = spoken
    segments = vad_segments(audio, detector, _params())
    assert len(segments) == 1  # ~25 s of speech and pauses fits one 30 s window
    assert segments[0].start_s <= sentences[0].start_s
    assert segments[0].end_s >= sentences[-1].end_s


def test_segments_respect_the_window_and_cut_only_in_pauses(
    detector: SpeechDetector, spoken: tuple[Audio, list[Span]]
) -> None:
    audio, sentences = spoken
    max_segment_s = 6.0  # a little under two sentences: forces a cut every sentence or two
    segments = vad_segments(audio, detector, _params(max_segment_s=max_segment_s))
    assert len(segments) >= 3
    assert [s.index for s in segments] == list(range(len(segments)))
    for segment in segments:
        assert segment.duration_s <= max_segment_s
        start = round(segment.start_s * SAMPLE_RATE_HZ)
        assert np.array_equal(segment.samples, audio.samples[start : start + len(segment.samples)])
    # No sentence is split: each lies inside exactly one segment (100 ms slack for the edges
    # espeak-ng fades in and out, which VAD rightly calls silence).
    for sentence in sentences:
        holders = [
            s for s in segments
            if s.start_s <= sentence.start_s + 0.1 and sentence.end_s - 0.1 <= s.end_s
        ]  # fmt: skip
        assert len(holders) == 1, sentence
    # Every cut between two segments falls in a pause between sentences.
    pauses = [Span(a.end_s, b.start_s) for a, b in pairwise(sentences)]
    for left, right in pairwise(segments):
        assert any(p.start_s - 0.1 <= left.end_s and right.start_s <= p.end_s + 0.1 for p in pauses)


def test_longer_silence_duration_override_merges_fewer_regions(
    detector: SpeechDetector, spoken: tuple[Audio, list[Span]]
) -> None:
    audio, _ = spoken
    probabilities = detector.frame_probabilities(audio.samples)
    short = detect_speech(probabilities, vad_params(VadSettings(), {"silence_duration_ms": 300}))
    long = detect_speech(probabilities, vad_params(VadSettings(), {"silence_duration_ms": 1000}))
    # Pauses of 0.6/0.7/0.8 s separate regions at 300 ms but not at 1000 ms.
    assert len(short) == len(SENTENCES)
    assert len(long) == 3
