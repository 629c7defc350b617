"""Speech streams for the realtime load clients: known sentences, known pauses, paced chunks.

A stream is speech a microphone would hear: sentences with pauses between them, 16 kHz mono,
and for every sentence the second it starts and ends in the stream (so the client knows the
end of speech without asking the server). Two sources:

- espeak-ng (`SENTENCES`), as bench/realtime_latency.py always did, where espeak-ng exists;
- a seed folder (bench/gpu/clips.py `seed`: `seed.json` + WAVs), numpy only, for the device
  machine, which has no espeak-ng.

Chunks are pre-encoded once per stream (JSON text of the append events), so 64 sessions do
not spend the client's CPU on base64 and JSON while they keep time.
"""

from __future__ import annotations

import base64
import json
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE_HZ = 16_000
OPENAI_RATE_HZ = 24_000  # OpenAI's realtime `audio/pcm` input
SEED_NAME = "seed.json"


@dataclass(frozen=True)
class Stream:
    samples: np.ndarray
    """16 kHz mono float32, leading silence, sentences and pauses, trailing silence."""
    spans: list[tuple[float, float]]
    """(start_s, end_s) of each sentence in `samples`."""
    texts: list[str]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE_HZ


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        if wav.getframerate() != RATE_HZ or wav.getnchannels() != 1:
            raise ValueError(f"{path}: need 16 kHz mono")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def load_seed(seed_dir: Path) -> list[tuple[np.ndarray, str]]:
    """(samples, text) per utterance of a bench/gpu/clips.py seed folder."""
    entries = json.loads((seed_dir / SEED_NAME).read_text())
    return [(_read_wav(seed_dir / entry["file"]), entry["text"]) for entry in entries]


def espeak_utterances(count: int) -> list[tuple[np.ndarray, str]]:
    """`count` espeak-ng sentences (en-us, 150 wpm); needs espeak-ng on PATH."""
    from bench.corpus import synthesize  # espeak-ng: not on the device machine
    from bench.realtime_latency import SENTENCES

    texts = [SENTENCES[i % len(SENTENCES)] for i in range(count)]
    return [(synthesize(text, "en-us", 150), text) for text in texts]


def build_stream(
    utterances: list[tuple[np.ndarray, str]],
    count: int,
    *,
    offset: int = 0,
    seed: int = 0,
    pause_s: tuple[float, float] = (0.8, 1.6),
) -> Stream:
    """`count` utterances from `offset` on (wrapping), each followed by a random pause."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.5 * RATE_HZ), np.float32)]
    spans, texts, cursor = [], [], 0.5
    for index in range(count):
        voice, text = utterances[(offset + index) % len(utterances)]
        spans.append((cursor, cursor + len(voice) / RATE_HZ))
        texts.append(text)
        pause = rng.uniform(*pause_s)
        parts += [voice, np.zeros(int(pause * RATE_HZ), np.float32)]
        cursor += len(voice) / RATE_HZ + pause
    parts.append(np.zeros(RATE_HZ, np.float32))
    samples = np.concatenate(parts)
    # A noise floor ~50 dB under speech: silence is never digital zero from a microphone.
    samples += (rng.standard_normal(len(samples)) * 0.002).astype(np.float32)
    return Stream(samples, spans, texts)


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """The gateway's rule (voxtral_gateway.pipeline.pcm16): clip, round, little-endian int16."""
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")


def append_events(samples: np.ndarray, rate_hz: int, chunk_ms: int) -> list[str]:
    """`input_audio_buffer.append` events (JSON text), `chunk_ms` of PCM16 at `rate_hz` each."""
    pcm = to_pcm16(samples)
    step = rate_hz * chunk_ms // 1000
    return [
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(pcm[i : i + step].tobytes()).decode("ascii"),
            }
        )
        for i in range(0, len(pcm), step)
    ]
