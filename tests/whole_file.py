"""The pipeline's public stages run over a whole file in one piece: references for tests.

The gateway itself never holds a whole file (decode and VAD go a chunk at a time, see
pipeline/stream.py); these helpers feed the same public stages one block, in one chunk.
"""

from __future__ import annotations

import numpy as np

from voxtral_gateway.pipeline.decode import AudioSource, decode_blocks
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Audio, Segment
from voxtral_gateway.pipeline.segment import VadParams
from voxtral_gateway.pipeline.stream import (
    FixedWindowSegmenter,
    Segmenter,
    VadSegmenter,
    segment_stream,
)
from voxtral_gateway.pipeline.vad import SpeechDetector
from voxtral_gateway.settings import LimitSettings


def decode_whole(source: AudioSource, limits: LimitSettings | None = None) -> Audio:
    """All of `source`, decoded, downmixed and resampled by `decode_blocks`, in one array."""
    blocks = list(decode_blocks(source, limits or LimitSettings()))
    return Audio(samples=blocks[0] if len(blocks) == 1 else np.concatenate(blocks))


def segments_in_one_chunk(samples: np.ndarray, segmenter: Segmenter) -> list[Segment]:
    """Every segment `segmenter` cuts from `samples` given as one block and one chunk."""
    chunk_s = len(samples) / SAMPLE_RATE_HZ + 1.0
    blocks = iter([samples] if len(samples) else [])
    return [
        s for batch in segment_stream(blocks, segmenter, chunk_s=chunk_s) for s in batch.segments
    ]


def vad_segments(audio: Audio, detector: SpeechDetector, params: VadParams) -> list[Segment]:
    """VAD over the whole file at once (one detector call); [] when there is no speech."""
    return segments_in_one_chunk(audio.samples, VadSegmenter(detector, params, warmup_s=0.0))


def fixed_window_segments(audio: Audio, window_s: float) -> list[Segment]:
    """VAD off: back-to-back windows of `window_s`, the last one shorter; [] if empty."""
    return segments_in_one_chunk(audio.samples, FixedWindowSegmenter(window_s))
