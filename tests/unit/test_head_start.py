"""SpeculativeWholeClip: when the whole clip goes ahead of VAD, and when VAD's answer wins.

The engine call is a coroutine here (what it sends is covered by the engine tests); these
tests drive the offer from a real thread into a real event loop, as the gateway does.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from voxtral_gateway.pipeline.head_start import SpeculativeWholeClip
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Segment
from voxtral_gateway.settings import HeadStartSettings


class EngineCalls:
    """Records what was launched and whether it ran to the end or was cancelled."""

    def __init__(self) -> None:
        self.launched: list[np.ndarray] = []
        self.cancelled = 0
        self.release = asyncio.Event()

    async def launch(self, samples: np.ndarray) -> str:
        self.launched.append(samples)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return "the words"


async def _run_scheduled_callbacks() -> None:
    """Let the loop run what is already scheduled (start -> task -> cancel is a few hops).

    No clock: every callback here is already queued or queued by one that is, so a fixed
    number of passes through the loop is deterministic however busy the machine is."""
    for _ in range(20):
        await asyncio.sleep(0)


def _speech(seconds: float) -> np.ndarray:
    return (0.3 * np.sin(np.arange(round(seconds * SAMPLE_RATE_HZ)) / 7)).astype(np.float32)


def _segment(start_s: float, end_s: float) -> Segment:
    samples = np.zeros(round((end_s - start_s) * SAMPLE_RATE_HZ), dtype=np.float32)
    return Segment(0, start_s, end_s, samples)


async def _offer_from_thread(
    samples: np.ndarray, settings: HeadStartSettings | None = None, busy: int = 0
) -> tuple[SpeculativeWholeClip, EngineCalls]:
    calls = EngineCalls()
    head_start = SpeculativeWholeClip(
        settings or HeadStartSettings(),
        calls.launch,
        busy_segments=lambda: busy,
        loop=asyncio.get_running_loop(),
    )
    thread = threading.Thread(target=head_start.offer, args=(samples,))
    thread.start()
    await asyncio.to_thread(thread.join)
    await _run_scheduled_callbacks()  # the loop runs the start it was handed
    return head_start, calls


def test_a_clip_vad_keeps_whole_uses_the_call_started_before_vad() -> None:
    async def scenario() -> None:
        clip = _speech(6.0)
        head_start, calls = await _offer_from_thread(clip)
        assert head_start.started and len(calls.launched) == 1
        np.testing.assert_array_equal(calls.launched[0], clip)
        # VAD left out 0.5 s in all (<= max_trim_s 1.0): the call stands.
        task = head_start.settle([_segment(0.2, 5.7)])
        assert task is not None
        calls.release.set()
        assert await task == "the words"
        assert calls.cancelled == 0

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("segments", "why"),
    [
        ([], "no speech"),
        ([(2.0, 6.0)], "two seconds of leading silence"),
        ([(0.0, 3.0), (3.5, 6.0)], "two segments"),
    ],
)
def test_the_call_is_cancelled_when_vad_disagrees(segments, why) -> None:
    async def scenario() -> None:
        head_start, calls = await _offer_from_thread(_speech(6.0))
        assert head_start.started, why
        assert head_start.settle([_segment(*s) for s in segments]) is None
        await _run_scheduled_callbacks()
        assert calls.cancelled == 1, why

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("samples", "settings", "busy", "why"),
    [
        (np.zeros(SAMPLE_RATE_HZ * 5, np.float32), None, 0, "digital silence"),
        (_speech(5.0) * 1e-4, None, 0, "below min_peak (-60 dBFS)"),
        (_speech(31.0), None, 0, "longer than max_clip_s"),
        (_speech(5.0), None, 4, "gateway busy (max_busy_segments 4)"),
        (_speech(5.0), HeadStartSettings(max_clip_s=4.0), 0, "longer than a lowered max_clip_s"),
    ],
)
def test_no_call_is_started(samples, settings, busy, why) -> None:
    async def scenario() -> None:
        head_start, calls = await _offer_from_thread(samples, settings, busy)
        assert not head_start.started, why
        assert calls.launched == [], why
        assert head_start.settle([_segment(0.0, 5.0)]) is None

    asyncio.run(scenario())


def test_a_request_closed_before_the_loop_starts_the_call_never_starts_it() -> None:
    async def scenario() -> None:
        calls = EngineCalls()
        head_start = SpeculativeWholeClip(
            HeadStartSettings(),
            calls.launch,
            busy_segments=lambda: 0,
            loop=asyncio.get_running_loop(),
        )
        head_start.offer(_speech(3.0))  # scheduled on the loop, which has not run it yet
        head_start.close()
        await _run_scheduled_callbacks()
        assert calls.launched == [] and not head_start.started

    asyncio.run(scenario())


def test_close_cancels_a_running_call() -> None:
    async def scenario() -> None:
        head_start, calls = await _offer_from_thread(_speech(3.0))
        head_start.close()
        await _run_scheduled_callbacks()
        assert calls.cancelled == 1

    asyncio.run(scenario())
