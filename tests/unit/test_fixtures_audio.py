"""The espeak-ng test-audio helpers: durations, formats and reference text are as promised."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from tests.fixtures.audio import SAMPLE_RATE_HZ, SENTENCES, AudioClip, AudioFactory


def test_speech_clip_has_exact_duration_and_whole_sentences(speech_60s: AudioClip) -> None:
    info = sf.info(str(speech_60s.path))
    assert (info.samplerate, info.channels, info.frames) == (16_000, 1, 60 * 16_000)
    assert speech_60s.text == " ".join(s.text for s in speech_60s.sentences)
    assert len(speech_60s.sentences) > len(SENTENCES)  # cycles through the list
    assert all(0 < s.start_s < s.end_s <= 60 for s in speech_60s.sentences)
    placed = speech_60s.sentences
    gaps = [b.start_s - a.end_s for a, b in zip(placed, placed[1:], strict=False)]
    assert min(gaps) >= 0.4


def test_pauses_are_quiet_and_speech_is_loud(speech_5s: AudioClip) -> None:
    samples, _ = sf.read(str(speech_5s.path), dtype="float32")
    first = speech_5s.sentences[0]
    lead = samples[: int(first.start_s * SAMPLE_RATE_HZ)]
    voiced = samples[int(first.start_s * SAMPLE_RATE_HZ) : int(first.end_s * SAMPLE_RATE_HZ)]
    assert 0 < np.sqrt(np.mean(lead**2)) < 0.01  # light noise, not digital silence
    assert np.sqrt(np.mean(voiced**2)) > 0.05


def test_same_seed_gives_the_same_clip(audio_factory: AudioFactory, speech_5s: AudioClip) -> None:
    again = audio_factory.speech(5.0, seed=0)
    assert again.path.read_bytes() == speech_5s.path.read_bytes()


def test_edge_case_clips_have_their_formats(
    silence_5s: AudioClip, speech_8khz: AudioClip, speech_stereo: AudioClip,
    very_short_clip: AudioClip,
) -> None:  # fmt: skip
    silence, _ = sf.read(str(silence_5s.path))
    assert not silence.any() and silence_5s.text == ""
    assert sf.info(str(speech_8khz.path)).samplerate == 8_000
    assert speech_8khz.text == speech_stereo.text != ""
    assert sf.info(str(speech_stereo.path)).channels == 2
    assert sf.info(str(very_short_clip.path)).frames == 1_600
