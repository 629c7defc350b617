"""Speech probabilities -> speech spans -> segments no longer than the model's window.

The stage is three pure steps plus the glue that runs the detector:

    detect_speech(probabilities, params)   -> speech spans (Silero's hysteresis state machine)
    merge_spans(spans, ...)                -> padded segment spans <= max_segment_s, cut in pauses
    cut_segments(audio, spans)             -> Segments with their samples

pipeline/stream.py runs them a chunk of audio at a time (`VadSegmenter`), and cuts fixed
windows when VAD is off (`FixedWindowSegmenter`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.pipeline.hysteresis import SpeechHysteresis, neg_threshold
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Audio, Segment, Span
from voxtral_gateway.pipeline.vad import FRAME_S, FRAME_SAMPLES
from voxtral_gateway.settings import VadSettings


@dataclass(frozen=True, kw_only=True)
class VadParams:
    """Segmentation parameters for one request (settings plus the client's overrides)."""

    threshold: float = 0.5
    """Frame speech probability (0-1) at or above which speech starts."""
    min_speech_ms: int = 250
    """Speech regions this short or shorter (milliseconds) are dropped as clicks."""
    min_silence_ms: int = 300
    """Pauses shorter than this (milliseconds) do not end a speech region."""
    speech_pad_ms: int = 200
    """Padding (milliseconds) added on each side of a segment, never into a neighbour."""
    max_segment_s: float = 30.0
    """Longest segment (seconds), padding included."""

    @property
    def neg_threshold(self) -> float:
        """Probability below which speech ends (hysteresis, as Silero does)."""
        return neg_threshold(self.threshold)


# Override keys: our own names, plus OpenAI's `chunking_strategy: {"type": "server_vad", ...}`.
_OVERRIDE_FIELDS = {
    "threshold": "threshold",
    "speech_pad_ms": "speech_pad_ms",
    "min_silence_ms": "min_silence_ms",
    "min_speech_ms": "min_speech_ms",
    "prefix_padding_ms": "speech_pad_ms",
    "silence_duration_ms": "min_silence_ms",
}


def vad_params(settings: VadSettings, overrides: Mapping[str, Any] | None = None) -> VadParams:
    """Settings defaults plus a client's overrides (our field names or OpenAI's server_vad ones).

    Raises InvalidRequestError (param `chunking_strategy`) for unknown fields or bad values.
    """
    values: dict[str, Any] = {
        "threshold": settings.threshold,
        "min_speech_ms": settings.min_speech_ms,
        "min_silence_ms": settings.min_silence_ms,
        "speech_pad_ms": settings.speech_pad_ms,
        "max_segment_s": settings.segment_max_s,
    }
    for name, value in (overrides or {}).items():
        if name == "type" or value is None:
            continue
        field = _OVERRIDE_FIELDS.get(name)
        if field is None:
            raise InvalidRequestError(
                f"Unknown chunking_strategy field {name!r}; expected one of "
                f"{sorted(_OVERRIDE_FIELDS)}",
                param="chunking_strategy",
            )
        values[field] = _checked_override(name, value)
    params = VadParams(**values)
    # Padding on both sides must leave room for speech inside the window.
    max_pad_ms = math.ceil(params.max_segment_s * 1000 / 4) - 1
    if params.speech_pad_ms > max_pad_ms:
        raise InvalidRequestError(
            f"chunking_strategy.prefix_padding_ms must be at most {max_pad_ms} "
            f"(a quarter of the {params.max_segment_s:g} s segment window)",
            param="chunking_strategy",
        )
    return params


def _checked_override(name: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(
            f"chunking_strategy.{name} must be a number", param="chunking_strategy"
        )
    if name == "threshold":
        if not 0.0 <= value <= 1.0:
            raise InvalidRequestError(
                "chunking_strategy.threshold must be between 0 and 1", param="chunking_strategy"
            )
        return float(value)
    if not 0 <= value <= 10_000:
        raise InvalidRequestError(
            f"chunking_strategy.{name} must be between 0 and 10000", param="chunking_strategy"
        )
    return int(value)


def detect_speech(probabilities: np.ndarray, params: VadParams) -> list[Span]:
    """Speech spans (unpadded, seconds) from per-frame probabilities; [] when there is none.

    Starts and stops are `SpeechHysteresis`'s, the rule realtime turn detection uses too;
    regions no longer than min_speech_ms are then dropped, and speech still open at the end
    runs to the end. Padding and the length cap are `merge_spans`'s, with the window in view.
    """
    total_samples = len(probabilities) * FRAME_SAMPLES
    min_speech_samples = SAMPLE_RATE_HZ * params.min_speech_ms / 1000
    rule = SpeechHysteresis(threshold=params.threshold, min_silence_ms=params.min_silence_ms)
    spans: list[Span] = []
    start: int | None = None
    for frame, probability in enumerate(probabilities.tolist()):
        turn = rule.step(probability, frame * FRAME_SAMPLES)
        if turn is None:
            continue
        if turn.kind == "start":
            start = turn.sample
            continue
        assert start is not None
        if turn.sample - start > min_speech_samples:
            spans.append(_span(start, turn.sample))
        start = None
    if start is not None and total_samples - start > min_speech_samples:
        spans.append(_span(start, total_samples))
    return spans


def _span(start_sample: int, end_sample: int) -> Span:
    return Span(start_sample / SAMPLE_RATE_HZ, end_sample / SAMPLE_RATE_HZ)


def merge_spans(
    spans: Sequence[Span],
    *,
    max_segment_s: float,
    speech_pad_s: float,
    duration_s: float,
    probabilities: np.ndarray | None = None,
) -> list[Span]:
    """Group speech spans into padded segments no longer than `max_segment_s`.

    The engine pads every call to a whole window (Voxtral and Whisper: 30 s), so a segment
    costs a window of encoder + prefill however short it is. Spans are therefore packed
    greedily: a segment takes every span that fits in the window and is cut only in the last
    pause before the window is full, which gives the fewest segments any cut in pauses can
    give. A single region longer than the window is cut at its lowest-probability frame (from
    `probabilities`, one per 32 ms frame) or, without them, at the window edge. Each segment
    is padded by up to `speech_pad_s` on both sides, never past the file, into a neighbour (a
    short gap is shared at its midpoint) or beyond the window: padding gives way to speech, so
    it can never push a window's worth of speech into a second call.
    """
    groups = group_spans(
        spans, max_segment_s=max_segment_s, speech_pad_s=speech_pad_s, probabilities=probabilities
    )
    return pad_groups(groups, speech_pad_s, duration_s, max_segment_s=max_segment_s)


def speech_room_s(max_segment_s: float, speech_pad_s: float) -> float:
    """Room for speech inside one segment, less a sample so rounding cannot overshoot.

    The whole window: padding is trimmed to fit (`pad_groups`), not reserved, because a
    reserved margin split every file just under the window in two (a 30 s clip with speech
    from 0.1 s to 29.9 s cost two 30 s engine windows)."""
    if max_segment_s <= 4 * speech_pad_s:
        raise ValueError("max_segment_s must exceed four times the padding")
    return max_segment_s - 1 / SAMPLE_RATE_HZ


def group_spans(
    spans: Sequence[Span],
    *,
    max_segment_s: float,
    speech_pad_s: float,
    probabilities: np.ndarray | None = None,
) -> list[Span]:
    """`merge_spans` before padding: each group starts at its first piece and takes every
    following piece that ends within `speech_room_s` of that start (greedy: cut only where
    the window is full)."""
    limit_s = speech_room_s(max_segment_s, speech_pad_s)
    pieces = [piece for span in spans for piece in _split_long_span(span, limit_s, probabilities)]
    groups: list[Span] = []
    first = 0
    while first < len(pieces):
        window_end_s = pieces[first].start_s + limit_s
        last = first
        while last + 1 < len(pieces) and pieces[last + 1].end_s <= window_end_s:
            last += 1
        groups.append(Span(pieces[first].start_s, pieces[last].end_s))
        first = last + 1
    return groups


def _split_long_span(span: Span, limit_s: float, probabilities: np.ndarray | None) -> list[Span]:
    """Cut a speech region longer than limit_s into abutting pieces no longer than limit_s."""
    pieces: list[Span] = []
    start_s = span.start_s
    while span.end_s - start_s > limit_s:
        cut_s = start_s + limit_s
        if probabilities is not None:
            # Look in the window's second half, so no piece is needlessly short.
            first = int(np.ceil((start_s + limit_s / 2) / FRAME_S))
            last = int((start_s + limit_s) / FRAME_S)  # frame `last` starts inside the window
            window = probabilities[first:last]
            if len(window):
                cut_s = (first + int(np.argmin(window))) * FRAME_S
        pieces.append(Span(start_s, cut_s))
        start_s = cut_s
    pieces.append(Span(start_s, span.end_s))
    return pieces


def pad_groups(
    groups: Sequence[Span],
    pad_s: float,
    duration_s: float,
    previous_end_s: float | None = None,
    *,
    max_segment_s: float,
) -> list[Span]:
    """Pad each group by up to `pad_s`, never past the file, beyond the midpoint of a gap to a
    neighbour, or to more than `max_segment_s` (less a sample) in all: a group that nearly
    fills the window gets what is left, shared between its two sides. `previous_end_s` is the
    end of an earlier group outside `groups`, if any."""
    limit = round(max_segment_s * SAMPLE_RATE_HZ) - 1
    padded: list[Span] = []
    for index, group in enumerate(groups):
        start_s = max(0.0, group.start_s - pad_s)
        end_s = min(duration_s, group.end_s + pad_s)
        before_s = groups[index - 1].end_s if index > 0 else previous_end_s
        if before_s is not None:
            start_s = max(start_s, (before_s + group.start_s) / 2)
        if index + 1 < len(groups):
            end_s = min(end_s, (group.end_s + groups[index + 1].start_s) / 2)
        padded.append(_fit_padding(group, start_s, end_s, limit))
    return padded


def _fit_padding(group: Span, start_s: float, end_s: float, limit: int) -> Span:
    """`start_s`-`end_s` (the padded group) trimmed to `limit` samples: the padding left over
    is shared evenly, as far as each side had any. In whole samples, so a group found in a
    chunk (offset by float seconds) gives the same cut as in the whole file."""
    g0, g1 = round(group.start_s * SAMPLE_RATE_HZ), round(group.end_s * SAMPLE_RATE_HZ)
    s0, e0 = round(start_s * SAMPLE_RATE_HZ), round(end_s * SAMPLE_RATE_HZ)
    if e0 - s0 <= limit:
        return Span(start_s, end_s)
    room = max(0, limit - (g1 - g0))
    head, tail = max(0, g0 - s0), max(0, e0 - g1)
    keep_head = min(head, max(room // 2, room - tail))
    # Never past the padded edges (a neighbour may start at a gap's midpoint, between samples).
    return Span(
        max(start_s, (g0 - keep_head) / SAMPLE_RATE_HZ),
        min(end_s, (g1 + min(tail, room - keep_head)) / SAMPLE_RATE_HZ),
    )


def cut_segments(
    audio: Audio, spans: Sequence[Span], *, first_index: int = 0, offset: int = 0
) -> list[Segment]:
    """Segments for `spans` (seconds in the file), numbered from `first_index`; `audio` holds
    the file's samples from sample `offset` on. Samples are views of `audio`."""
    segments = []
    for index, span in enumerate(spans, start=first_index):
        start = round(span.start_s * SAMPLE_RATE_HZ)
        end = min(round(span.end_s * SAMPLE_RATE_HZ), offset + len(audio.samples))
        segments.append(
            Segment(
                index=index,
                start_s=start / SAMPLE_RATE_HZ,
                end_s=end / SAMPLE_RATE_HZ,
                samples=audio.samples[start - offset : end - offset],
            )
        )
    return segments
