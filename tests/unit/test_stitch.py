from __future__ import annotations

from voxtral_gateway.pipeline.records import SegmentResult
from voxtral_gateway.pipeline.stitch import join_texts, stitch


def test_segments_are_ordered_and_joined_with_single_spaces() -> None:
    results = [
        SegmentResult(2, 9.0, 12.0, "  third\n part "),
        SegmentResult(0, 0.0, 3.0, "first"),
        SegmentResult(1, 4.0, 8.0, ""),
    ]
    transcript = stitch(results, duration_s=12.5, language="en")
    assert transcript.text == "first third part"
    # The empty segment leaves no timed entry (it would be an empty subtitle).
    assert [s.index for s in transcript.segments] == [0, 2]


def test_no_space_scripts_join_without_space() -> None:
    assert join_texts(["今日は", "いい天気"]) == "今日はいい天気"
    assert join_texts(["Hello", "世界"]) == "Hello 世界"
