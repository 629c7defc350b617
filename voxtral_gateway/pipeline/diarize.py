"""Speaker embeddings -> speaker labels: pure functions, testable without an encoder.

Each speech region (one engine segment when speakers are asked for) has one embedding, the
normalised mean of its windows' embeddings. Offline, the regions are clustered with
agglomerative average-linkage clustering on cosine distance (scipy); the number of speakers is
where merging would join clusters further apart than a threshold, clamped to the client's
bounds. Online (streaming), each region joins the nearest speaker seen so far or starts a new
one. Clusters take a known speaker's name when their centroid resembles that speaker's
reference clip; the others are labelled `A`, `B`, ... in order of first appearance, as OpenAI
labels unknown speakers.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeakerBounds:
    """How many speakers the client says there are (both inclusive; None: not bounded)."""

    min_speakers: int | None = None
    max_speakers: int | None = None


def normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def cluster_speakers(
    embeddings: np.ndarray, *, bounds: SpeakerBounds, distance_threshold: float
) -> list[int]:
    """Cluster number (0, 1, ... in order of first appearance) of each embedding row."""
    count = len(embeddings)
    if count == 0:
        return []
    low = min(bounds.min_speakers or 1, count)
    high = min(bounds.max_speakers or count, count)
    if count == 1 or high == 1:
        return [0] * count
    # scipy comes with the `[speakers]` extra: imported only when speakers are asked for.
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(embeddings, method="average", metric="cosine")
    # Merge heights are increasing: clusters left above the threshold is the estimated count.
    estimated = int(np.sum(tree[:, 2] > distance_threshold)) + 1
    clusters = fcluster(tree, t=min(max(estimated, low), high), criterion="maxclust")
    return _in_order_of_appearance(clusters.tolist())


def _in_order_of_appearance(labels: Sequence[int]) -> list[int]:
    renumbered: dict[int, int] = {}
    return [renumbered.setdefault(label, len(renumbered)) for label in labels]


def centroids(embeddings: np.ndarray, clusters: Sequence[int]) -> np.ndarray:
    """Normalised mean embedding of each cluster, in cluster-number order."""
    labels = np.asarray(clusters)
    return np.stack(
        [
            normalise(embeddings[labels == number].mean(axis=0))
            for number in range(max(clusters) + 1)
        ]
    )


def speaker_names(
    cluster_centroids: np.ndarray,
    references: Mapping[str, np.ndarray],
    *,
    min_similarity: float,
) -> list[str]:
    """A name per cluster: the known speaker it best matches (one cluster per name, by the
    assignment with the highest total similarity), or the next free letter."""
    names: list[str | None] = [None] * len(cluster_centroids)
    if references and len(cluster_centroids):
        from scipy.optimize import linear_sum_assignment

        known = list(references)
        similarity = cluster_centroids @ np.stack([references[name] for name in known]).T
        rows, columns = linear_sum_assignment(similarity, maximize=True)
        for row, column in zip(rows, columns, strict=True):
            if similarity[row, column] >= min_similarity:
                names[row] = known[column]
    letters = (letter for letter in string.ascii_uppercase if letter not in references)
    return [name if name is not None else next(letters) for name in names]


class OnlineSpeakers:
    """Streaming labels: each region joins the most similar speaker so far (if within the
    threshold, or if no new speaker is allowed) or becomes a new one. Labels never change."""

    def __init__(
        self,
        *,
        bounds: SpeakerBounds,
        distance_threshold: float,
        references: Mapping[str, np.ndarray],
        min_similarity: float,
        max_speakers: int,
    ) -> None:
        self._limit = min(bounds.max_speakers or max_speakers, max_speakers)
        self._threshold = distance_threshold
        self._sums: list[np.ndarray] = []
        self._names: list[str] = []
        self._references = dict(references)
        self._min_similarity = min_similarity
        self._letters = (c for c in string.ascii_uppercase if c not in self._references)

    def label(self, embedding: np.ndarray) -> str:
        if self._sums:
            similarities = [float(normalise(s) @ embedding) for s in self._sums]
            best = int(np.argmax(similarities))
            if 1 - similarities[best] <= self._threshold or len(self._sums) >= self._limit:
                self._sums[best] = self._sums[best] + embedding
                return self._names[best]
        self._sums.append(embedding.copy())
        self._names.append(self._new_name(embedding))
        return self._names[-1]

    def _new_name(self, embedding: np.ndarray) -> str:
        free = {n: r for n, r in self._references.items() if n not in self._names}
        if free:
            name, reference = max(free.items(), key=lambda item: float(item[1] @ embedding))
            if float(reference @ embedding) >= self._min_similarity:
                return name
        return next(self._letters)
