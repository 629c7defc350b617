"""VAD packs speech regions into windows and keeps the regions, for the speaker stage."""

from __future__ import annotations

from voxtral_gateway.pipeline.records import Span
from voxtral_gateway.pipeline.segment import group_regions, group_spans

REGIONS = [Span(0.5, 2.0), Span(2.6, 4.0), Span(5.0, 7.5)]


def test_regions_are_grouped_into_windows() -> None:
    assert group_spans(REGIONS, max_segment_s=30.0, speech_pad_s=0.2) == [Span(0.5, 7.5)]


def test_each_window_keeps_the_regions_it_packs() -> None:
    assert group_regions(REGIONS, max_segment_s=30.0, speech_pad_s=0.2) == [tuple(REGIONS)]
    groups = group_regions(REGIONS, max_segment_s=5.0, speech_pad_s=0.2)
    assert groups == [tuple(REGIONS[:2]), (REGIONS[2],)]


def test_one_long_region_is_cut_into_pieces_of_a_window() -> None:
    groups = group_regions([Span(0.0, 50.0)], max_segment_s=30.0, speech_pad_s=0.2)
    assert len(groups) == 2 and all(len(g) == 1 and g[0].duration_s <= 30.0 for g in groups)
