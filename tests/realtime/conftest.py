"""Realtime test parts: 24 kHz PCM16 chunks from test clips, and a raw WebSocket client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr
from websockets.sync.client import ClientConnection, connect

from tests.fixtures.audio import SAMPLE_RATE_HZ, AudioFactory, write_wav
from voxtral_gateway.pipeline.pcm16 import to_pcm16

REALTIME_RATE_HZ = 24_000


def pcm16_chunks(samples_16k: np.ndarray, chunk_ms: int = 100) -> list[str]:
    """16 kHz float audio as base64 24 kHz PCM16 appends of `chunk_ms` each (OpenAI's format)."""
    audio = soxr.resample(samples_16k, SAMPLE_RATE_HZ, REALTIME_RATE_HZ)
    pcm = to_pcm16(audio)
    step = REALTIME_RATE_HZ * chunk_ms // 1000
    return [
        base64.b64encode(pcm[i : i + step].tobytes()).decode() for i in range(0, len(pcm), step)
    ]


def read_clip(path: Path) -> np.ndarray:
    samples, rate = sf.read(str(path), dtype="float32")
    assert rate == SAMPLE_RATE_HZ
    return samples


@pytest.fixture(scope="session")
def two_sentences(
    audio_factory: AudioFactory,
) -> tuple[Path, list[str], list[tuple[float, float]]]:
    """Two espeak sentences, 1.2 s apart, 0.4 s lead-in and 1.5 s of silence after: a WAV and
    its reference sentences and their (start_s, end_s). Pauses are longer than the 500 ms
    that ends a turn."""
    texts = [
        "Please call the office before noon tomorrow.",
        "The train leaves the station in the morning.",
    ]
    gap = np.zeros(round(1.2 * SAMPLE_RATE_HZ), np.float32)
    samples = np.concatenate(
        [
            np.zeros(round(0.4 * SAMPLE_RATE_HZ), np.float32),
            audio_factory.voice(texts[0]),
            gap,
            audio_factory.voice(texts[1]),
            np.zeros(round(1.5 * SAMPLE_RATE_HZ), np.float32),
        ]
    )
    rng = np.random.default_rng(1)
    samples = samples + (rng.standard_normal(len(samples)) * 0.002).astype(np.float32)
    path = write_wav(audio_factory.directory / "realtime-two-sentences.wav", samples)
    end_0 = 0.4 + len(audio_factory.voice(texts[0])) / SAMPLE_RATE_HZ
    end_1 = end_0 + 1.2 + len(audio_factory.voice(texts[1])) / SAMPLE_RATE_HZ
    return path, texts, [(0.4, end_0), (end_0 + 1.2, end_1)]


class RawSession:
    """A realtime session over a plain WebSocket, for events the SDK would refuse to send."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    def send(self, event: dict[str, Any] | str) -> None:
        self.connection.send(event if isinstance(event, str) else json.dumps(event))

    def recv(self, timeout_s: float = 30.0) -> dict[str, Any]:
        return json.loads(self.connection.recv(timeout=timeout_s))

    def recv_until(self, event_type: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Events up to and including the first of `event_type`."""
        seen = []
        while True:
            event = self.recv(timeout_s)
            seen.append(event)
            if event["type"] == event_type:
                return seen


def realtime_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"


@pytest.fixture
def raw_session() -> Iterator[Any]:
    """`raw_session(base_url, headers=None)` opens a session and reads `session.created`."""
    opened: list[ClientConnection] = []

    def _open(base_url: str, **kwargs: Any) -> RawSession:
        connection = connect(realtime_url(base_url), max_size=None, **kwargs)
        opened.append(connection)
        session = RawSession(connection)
        assert session.recv()["type"] == "session.created"
        return session

    yield _open
    for connection in opened:
        connection.close()
