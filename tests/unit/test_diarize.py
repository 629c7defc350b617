"""Clustering and naming of speaker embeddings (pure functions, no encoder)."""

from __future__ import annotations

import numpy as np

from voxtral_gateway.pipeline.diarize import (
    OnlineSpeakers,
    SpeakerBounds,
    centroids,
    cluster_speakers,
    normalise,
    speaker_names,
)


def _voices(seed: int = 0, count: int = 3, dim: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([normalise(rng.standard_normal(dim)) for _ in range(count)])


def _regions(voices: np.ndarray, order: list[int], noise: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.stack(
        [normalise(voices[v] + noise * rng.standard_normal(voices.shape[1])) for v in order]
    )


def test_clusters_follow_the_voices_numbered_by_first_appearance() -> None:
    order = [2, 0, 2, 1, 0, 1, 2]
    labels = cluster_speakers(
        _regions(_voices(), order), bounds=SpeakerBounds(), distance_threshold=0.3
    )
    assert labels == [0, 1, 0, 2, 1, 2, 0]


def test_one_voice_gives_one_cluster_and_nothing_gives_none() -> None:
    one = _regions(_voices(), [0, 0, 0, 0])
    assert cluster_speakers(one, bounds=SpeakerBounds(), distance_threshold=0.3) == [0] * 4
    empty = np.zeros((0, 32))
    assert cluster_speakers(empty, bounds=SpeakerBounds(), distance_threshold=0.3) == []


def test_bounds_override_the_threshold() -> None:
    regions = _regions(_voices(), [0, 1, 2, 0, 1, 2])
    assert (
        max(cluster_speakers(regions, bounds=SpeakerBounds(max_speakers=2), distance_threshold=0.3))
        == 1
    )
    # A threshold that would merge everything still leaves the minimum asked for.
    forced = cluster_speakers(regions, bounds=SpeakerBounds(min_speakers=3), distance_threshold=1.9)
    assert len(set(forced)) == 3


def test_known_speakers_name_their_clusters_and_the_rest_get_letters() -> None:
    voices = _voices()
    order = [0, 1, 2, 1]
    regions = _regions(voices, order)
    clusters = cluster_speakers(regions, bounds=SpeakerBounds(), distance_threshold=0.3)
    names = speaker_names(
        centroids(regions, clusters),
        {"agent": voices[1], "customer": voices[2]},
        min_similarity=0.6,
    )
    assert [names[c] for c in clusters] == ["A", "agent", "customer", "agent"]


def test_a_reference_unlike_every_cluster_names_nobody() -> None:
    voices = _voices(count=4)
    regions = _regions(voices, [0, 1])
    clusters = cluster_speakers(regions, bounds=SpeakerBounds(), distance_threshold=0.3)
    names = speaker_names(centroids(regions, clusters), {"x": voices[3]}, min_similarity=0.6)
    assert names == ["A", "B"]


def test_online_labels_are_stable_and_bounded() -> None:
    voices = _voices()
    online = OnlineSpeakers(
        bounds=SpeakerBounds(),
        distance_threshold=0.3,
        references={"bob": voices[1]},
        min_similarity=0.6,
        max_speakers=8,
    )
    labels = [online.label(r) for r in _regions(voices, [0, 1, 0, 2, 1])]
    assert labels == ["A", "bob", "A", "B", "bob"]
    capped = OnlineSpeakers(
        bounds=SpeakerBounds(max_speakers=1),
        distance_threshold=0.3,
        references={},
        min_similarity=0.6,
        max_speakers=8,
    )
    assert {capped.label(r) for r in _regions(voices, [0, 1, 2])} == {"A"}
