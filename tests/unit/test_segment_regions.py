"""With speakers asked for, every speech region is its own segment (no turn change inside)."""

from __future__ import annotations

from voxtral_gateway.pipeline.records import Span
from voxtral_gateway.pipeline.segment import group_spans

REGIONS = [Span(0.5, 2.0), Span(2.6, 4.0), Span(5.0, 7.5)]


def test_regions_are_grouped_into_windows_by_default() -> None:
    assert group_spans(REGIONS, max_segment_s=30.0, speech_pad_s=0.2) == [Span(0.5, 7.5)]


def test_one_region_per_segment_keeps_each_region_apart() -> None:
    groups = group_spans(REGIONS, max_segment_s=30.0, speech_pad_s=0.2, one_region=True)
    assert groups == REGIONS


def test_one_long_region_is_still_cut_to_the_window() -> None:
    groups = group_spans([Span(0.0, 50.0)], max_segment_s=30.0, speech_pad_s=0.2, one_region=True)
    assert len(groups) == 2 and all(g.duration_s <= 30.0 for g in groups)
