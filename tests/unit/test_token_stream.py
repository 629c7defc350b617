"""Token streaming: deltas add up to the done text; buffered deltas come out in order."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voxtral_gateway.pipeline.stitch import join_texts
from voxtral_gateway.pipeline.token_stream import DeltaCleaner, SegmentDeltas

WORDS = ["the", "birch", "canoe", "slid", "東京", "は", "雨", "on", "planks.", "", " ", "\n"]


def _random_segment(rng: np.random.Generator) -> str:
    parts = rng.choice(WORDS, size=int(rng.integers(0, 8)))
    separators = rng.choice([" ", "  ", "\n", ""], size=len(parts))
    return "".join(f"{sep}{part}" for sep, part in zip(separators, parts, strict=True))


def _split(text: str, rng: np.random.Generator) -> list[str]:
    cuts = sorted(rng.integers(0, len(text) + 1, size=int(rng.integers(0, 6))).tolist())
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize("seed", range(50))
def test_cleaned_deltas_add_up_to_the_joined_text(seed: int) -> None:
    rng = np.random.default_rng(seed)
    segments = [_random_segment(rng) for _ in range(int(rng.integers(1, 6)))]
    cleaner = DeltaCleaner()
    sent = []
    for text in segments:
        sent += [cleaner.clean(delta) for delta in _split(text, rng)]
        cleaner.next_segment()
    assert "".join(sent) == join_texts(segments)


def test_deltas_of_a_later_segment_wait_for_its_turn() -> None:
    async def scenario() -> list[tuple[int, str]]:
        deltas = SegmentDeltas()
        deltas.push(1, "later")  # segment 1 streams first, while segment 0 is still running
        deltas.close(1)
        seen: list[tuple[int, str]] = []

        async def read() -> None:
            for index in (0, 1):
                seen.extend([(index, text) async for text, _ in deltas.deltas(index)])

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(0)  # the reader now waits on segment 0
        assert seen == []
        deltas.push(0, "first")
        deltas.push(0, " words")
        deltas.close(0)
        await reader
        return seen

    assert asyncio.run(scenario()) == [(0, "first"), (0, " words"), (1, "later")]
