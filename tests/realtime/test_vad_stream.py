"""Streaming VAD and delta rules, without a network: espeak-ng speech through the real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from silero_vad import load_silero_vad

from tests.realtime.conftest import read_clip
from voxtral_gateway.realtime.transcriber import delta_text, new_words
from voxtral_gateway.realtime.vad_stream import SileroStream, TurnDetector, load_vad_session


@pytest.fixture(scope="module")
def vad_model():
    return load_vad_session()


def test_stream_probabilities_equal_the_packages_own_loop(vad_model, sentence_clips):
    samples = read_clip(sentence_clips[2].path)
    frames = samples[: len(samples) // 512 * 512].reshape(-1, 512)
    stream = SileroStream(vad_model)
    ours = np.array([stream.frame_probability(frame) for frame in frames])
    reference = load_silero_vad(onnx=True)
    theirs = np.array([reference(torch.from_numpy(frame.copy()), 16000).item() for frame in frames])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert ours.max() > 0.9 and ours[:5].max() < 0.2  # speech found, leading silence not


def _turns(vad_model, samples: np.ndarray, chunk: int) -> list[tuple[str, int]]:
    detector = TurnDetector(SileroStream(vad_model), threshold=0.5, silence_ms=500)
    events = []
    for start in range(0, len(samples), chunk):
        events += [(e.kind, e.sample) for e in detector.feed(samples[start : start + chunk])]
    return events


def test_turns_do_not_depend_on_how_the_audio_is_chunked(vad_model, two_sentences):
    samples = read_clip(two_sentences[0])
    by_chunk = {chunk: _turns(vad_model, samples, chunk) for chunk in (160, 1600, 5000, 48000)}
    assert len({tuple(v) for v in by_chunk.values()}) == 1


def test_turns_open_and_close_at_the_sentences(vad_model, two_sentences):
    path, _, spans = two_sentences
    turns = _turns(vad_model, read_clip(path), 1600)
    assert [kind for kind, _ in turns] == ["start", "stop", "start", "stop"]
    for (start_s, end_s), (_, start), (_, stop) in zip(spans, turns[::2], turns[1::2], strict=True):
        assert abs(start / 16000 - start_s) < 0.1
        assert abs(stop / 16000 - end_s) < 0.3


def test_a_pause_shorter_than_the_silence_duration_keeps_the_turn(vad_model, two_sentences):
    detector = TurnDetector(SileroStream(vad_model), threshold=0.5, silence_ms=1400)
    events = detector.feed(read_clip(two_sentences[0]))
    assert [e.kind for e in events] == ["start", "stop"]  # the 1.2 s gap did not end it


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
