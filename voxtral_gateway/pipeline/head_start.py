"""A short clip's engine call, started as soon as it is decoded, while VAD still runs.

VAD costs a few ms of a short clip's latency, and on a clip that is speech from end to end it
changes nothing: its one segment is the clip. So the decode thread offers the whole clip here
just before VAD starts; if the gateway is nearly idle and the clip is audible, the clip goes
to the engine at once. When VAD is done, `settle` keeps the call if VAD found one segment that
leaves out at most `max_trim_s` (the answer is the engine's, the timestamps VAD's), and
otherwise cancels it, so VAD's segments go as usual and silence still gets no transcript.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from voxtral_gateway.engine_calls import EngineAnswer
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Segment
from voxtral_gateway.settings import HeadStartSettings

Launch = Callable[[np.ndarray], Awaitable[EngineAnswer]]
"""Sends samples to the engine; returns its answer."""


class SpeculativeWholeClip:
    """One request's head start: a speculative engine call for the whole clip, offered from
    the decode thread, kept or cancelled (`settle`) on the event loop once VAD has run."""

    def __init__(
        self,
        settings: HeadStartSettings,
        launch: Launch,
        *,
        busy_segments: Callable[[], int],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._settings = settings
        self._launch = launch
        self._busy_segments = busy_segments
        self._loop = loop
        self._task: asyncio.Task[EngineAnswer] | None = None
        self._closed = False
        self._duration_s = 0.0

    def offer(self, samples: np.ndarray) -> None:
        """The whole clip, from the decode thread, just before VAD runs on it."""
        s = self._settings
        if len(samples) > s.max_clip_s * SAMPLE_RATE_HZ or not len(samples):
            return
        if float(np.max(np.abs(samples))) < s.min_peak:
            return  # digital silence: VAD will find nothing, and the engine need not see it
        self._duration_s = len(samples) / SAMPLE_RATE_HZ
        self._loop.call_soon_threadsafe(self._start, samples)

    def _start(self, samples: np.ndarray) -> None:
        # Decided on the loop, where the load is read; the request may be gone already.
        if self._closed or self._busy_segments() >= self._settings.max_busy_segments:
            return
        self._task = asyncio.ensure_future(self._launch(samples))

    @property
    def started(self) -> bool:
        return self._task is not None

    def settle(self, segments: Sequence[Segment]) -> asyncio.Task[EngineAnswer] | None:
        """After VAD: the call, if its answer stands for `segments`; else it is cancelled.
        (Only a file that came whole in one chunk is ever offered: VadSegmenter's rule.)"""
        task, self._task = self._task, None
        self._closed = True
        if task is None:
            return None
        if len(segments) == 1:
            left_out_s = segments[0].start_s + (self._duration_s - segments[0].end_s)
            if left_out_s <= self._settings.max_trim_s + 1e-9:
                return task
        cancel_unawaited(task)
        return None

    def close(self) -> None:
        """The request ended before settling (an error, a cancel): stop any call."""
        self._closed = True
        if self._task is not None:
            cancel_unawaited(self._task)
            self._task = None


def cancel_unawaited(task: asyncio.Task[EngineAnswer]) -> None:
    """Cancel, and read any failure so asyncio does not log it as never retrieved."""
    task.cancel()
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
