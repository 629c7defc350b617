"""The GE2E encoder batches a window's regions into one LSTM pass: same embeddings as one by one."""

from __future__ import annotations

import numpy as np
import pytest

from voxtral_gateway.pipeline.speaker_encoder import load_speaker_encoder
from voxtral_gateway.settings import SpeakerSettings


def test_clips_embedded_together_match_each_embedded_alone() -> None:
    encoder = load_speaker_encoder(SpeakerSettings())
    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 4) / 16_000
    voiced = (np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    clips = [
        voiced[:8_000],  # shorter than a window: one embedding of all of it
        np.zeros(0, np.float32),  # nothing: no embedding
        voiced * 0.3 + rng.normal(0, 0.01, len(voiced)).astype(np.float32),
        voiced[:40_000],
    ]
    together = encoder.embed_clips(clips, 1.5, 1.5)
    alone = [encoder.embed_windows(clip, 1.5, 1.5) for clip in clips]
    assert [len(e) for e in together] == [1, 0, 3, 2]
    for batched, single in zip(together, alone, strict=True):
        assert batched.shape == single.shape
        assert batched == pytest.approx(single, abs=1e-5)
