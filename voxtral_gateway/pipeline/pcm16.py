"""The one 16-bit PCM <-> float32 conversion, used wherever samples cross a wire or a WAV.

Scale 32768 both ways (libsndfile's rule), rounded and clipped on the way out, so a PCM16 input
read here and written back is bit-identical, and out-of-range float samples saturate instead of
wrapping round to the opposite sign.
"""

from __future__ import annotations

import numpy as np

_SCALE = 32768.0


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples (nominally [-1, 1]) as little-endian int16: scaled, rounded, clipped."""
    return np.clip(np.rint(np.asarray(samples, np.float64) * _SCALE), -32768, 32767).astype("<i2")


def from_pcm16(pcm: bytes | np.ndarray) -> np.ndarray:
    """Little-endian int16 samples (raw bytes or an array) as float32 in [-1, 1)."""
    if isinstance(pcm, bytes | bytearray | memoryview):
        pcm = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
    return pcm.astype(np.float32) * np.float32(1 / _SCALE)
