"""Streaming VAD and delta rules, without a network: espeak-ng speech through the real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from silero_vad import load_silero_vad

from tests.realtime.conftest import read_clip
from voxtral_gateway.pipeline.segment import VadParams, detect_speech
from voxtral_gateway.pipeline.vad import load_detector
from voxtral_gateway.realtime.transcriber import delta_text, new_words
from voxtral_gateway.realtime.vad_stream import TurnDetector
from voxtral_gateway.settings import VadSettings


@pytest.fixture(scope="module")
def vad_model():
    """The gateway's one VAD detector, the same object batch requests use."""
    return load_detector(VadSettings())


def test_stream_probabilities_equal_the_packages_own_loop(vad_model, sentence_clips):
    samples = read_clip(sentence_clips[2].path)
    frames = samples[: len(samples) // 512 * 512].reshape(-1, 512)
    stream = vad_model.stream()
    ours = np.concatenate([stream.probabilities(frame) for frame in frames])
    reference = load_silero_vad(onnx=True)
    theirs = np.array([reference(torch.from_numpy(frame.copy()), 16000).item() for frame in frames])
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert ours.max() > 0.9 and ours[:5].max() < 0.2  # speech found, leading silence not


def test_streamed_turns_are_the_batch_segmenters_speech_spans(vad_model, two_sentences):
    # One model, one hysteresis: the spans a batch request finds are the realtime turns.
    samples = read_clip(two_sentences[0])
    params = VadParams(threshold=0.5, min_silence_ms=500, min_speech_ms=0)
    spans = detect_speech(vad_model.frame_probabilities(samples), params)
    turns = _turns(vad_model, samples, 1600)
    pairs = zip(turns[::2], turns[1::2], strict=True)
    streamed = [(start / 16000, stop / 16000) for (_, start), (_, stop) in pairs]
    assert [(span.start_s, span.end_s) for span in spans] == streamed


def _turns(
    vad_model, samples: np.ndarray, chunk: int, *, kinds: tuple[str, ...] = ("start", "stop")
) -> list[tuple[str, int]]:
    detector = TurnDetector(vad_model.stream(), threshold=0.5, silence_ms=500)
    events = []
    for start in range(0, len(samples), chunk):
        events += [(e.kind, e.sample) for e in detector.feed(samples[start : start + chunk])]
    return [(kind, sample) for kind, sample in events if kind in kinds]


def test_turns_do_not_depend_on_how_the_audio_is_chunked(vad_model, two_sentences):
    samples = read_clip(two_sentences[0])
    every_kind = ("start", "pause", "resume", "stop")
    by_chunk = {
        chunk: _turns(vad_model, samples, chunk, kinds=every_kind)
        for chunk in (160, 1600, 5000, 48000)
    }
    assert len({tuple(v) for v in by_chunk.values()}) == 1


def test_turns_open_and_close_at_the_sentences(vad_model, two_sentences):
    path, _, spans = two_sentences
    turns = _turns(vad_model, read_clip(path), 1600)
    assert [kind for kind, _ in turns] == ["start", "stop", "start", "stop"]
    for (start_s, end_s), (_, start), (_, stop) in zip(spans, turns[::2], turns[1::2], strict=True):
        assert abs(start / 16000 - start_s) < 0.1
        assert abs(stop / 16000 - end_s) < 0.3


def test_a_pause_shorter_than_the_silence_duration_keeps_the_turn(vad_model, two_sentences):
    detector = TurnDetector(vad_model.stream(), threshold=0.5, silence_ms=1400)
    # 0.5 s more trailing silence, so the end is a pause well past 1.4 s.
    samples = np.concatenate([read_clip(two_sentences[0]), np.zeros(8000, np.float32)])
    events = detector.feed(samples)
    turns = [e for e in events if e.kind in ("start", "stop")]
    assert [e.kind for e in turns] == ["start", "stop"]  # the 1.2 s gap did not end it


def test_pauses_inside_a_turn_are_reported_where_the_stop_would_be(vad_model, two_sentences):
    # A speculative final starts at a pause: each pause is where the turn would stop if the
    # silence lasted, a resume comes before any later speech, and the stop is the last pause.
    path, _, spans = two_sentences
    samples = np.concatenate([read_clip(path), np.zeros(8000, np.float32)])
    events = TurnDetector(vad_model.stream(), threshold=0.5, silence_ms=1400).feed(samples)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-2:] == ["pause", "stop"]
    assert kinds[1:-2] == ["pause", "resume"] * ((len(kinds) - 3) // 2)
    assert events[-1].sample == events[-2].sample
    pauses = [e.sample / 16000 for e in events if e.kind == "pause"]
    resumes = [e.sample / 16000 for e in events if e.kind == "resume"]
    (first_end, second_start) = spans[0][1], spans[1][0]
    # The gap between the sentences is one pause, resumed by the second sentence.
    gap_pause = next(p for p in pauses if abs(p - first_end) < 0.3)
    gap_resume = next(r for r in resumes if r > gap_pause)
    assert abs(gap_resume - second_start) < 0.1
    # The 500 ms rule would have stopped the turn exactly at that pause.
    batch = _turns(vad_model, samples, 1600)
    assert ("stop", round(gap_pause * 16000)) in batch


@pytest.mark.parametrize(
    ("sent", "hypothesis", "is_final", "expected"),
    [
        ([], "The quick brown", False, ["The", "quick"]),  # last word may be cut mid-word
        ([], "The quick brown", True, ["The", "quick", "brown"]),
        (["The", "quick"], "the quick, brown fox jumps", False, ["brown", "fox"]),
        (["The", "quick"], "The quack brown fox", False, []),  # revision: wait for completed
        (["The", "quick", "brown"], "The quick", True, []),
        ([], "", True, []),
    ],
)
def test_new_words_only_ever_append(sent, hypothesis, is_final, expected):
    assert new_words(sent, hypothesis, is_final=is_final) == expected


def test_delta_text_joins_with_one_space():
    assert delta_text([], ["Hello", "there"]) == "Hello there"
    assert delta_text(["Hello"], ["there"]) == " there"
