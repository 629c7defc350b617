"""The one PCM16 conversion: lossless round trip, rounding, saturation."""

from __future__ import annotations

import numpy as np

from voxtral_gateway.pipeline.pcm16 import from_pcm16, to_pcm16


def test_every_int16_value_survives_a_round_trip() -> None:
    pcm = np.arange(-32768, 32768, dtype="<i2")
    assert np.array_equal(to_pcm16(from_pcm16(pcm.tobytes())), pcm)


def test_rounds_to_nearest_and_saturates_instead_of_wrapping() -> None:
    samples = np.array([0.6 / 32768, -0.6 / 32768, 1.0, 1.5, -1.0, -2.0], np.float32)
    assert to_pcm16(samples).tolist() == [1, -1, 32767, 32767, -32768, -32768]
