"""Synthetic conversations with known turns: espeak-ng voices taking turns, for diarization.

Each speaker is an espeak-ng voice variant (with its own pitch); turns are separated by
overlap-free pauses of varied length over light noise. Synthetic voices differ more cleanly
than real people do (no crosstalk, no room, no shared accents): scores on this audio are an
upper bound for real meetings, not an estimate of them.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE_HZ = 16_000
NOISE_RMS = 0.003


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice and pitch (0-99)."""

    name: str
    pitch: int = 50


# Chosen so that no two are closer (mean GE2E cosine similarity, 0.73 at most) than a voice
# is to itself across lines (0.84-0.90); other variants (en-gb+m1 vs en-us+m3, f3 vs f4)
# are near-identical to the encoder, as they are to the ear.
VOICES: dict[str, Voice] = {
    "alice": Voice("en-us+f3", 60),
    "bob": Voice("en-us+m3", 35),
    "carl": Voice("en-us+klatt", 50),
    "dave": Voice("en+m7", 20),
}

LINES: tuple[str, ...] = (
    "Good morning everyone, let us look at the plan for this week.",
    "I finished the report yesterday and sent it to the team.",
    "The budget is still a little higher than we hoped.",
    "Can we move the review to Thursday afternoon?",
    "Yes, that works for me.",
    "The new design is ready for testing in the lab.",
    "We should ask the customer what they think about it.",
    "I will call them after lunch and write down their answers.",
    "The train was late again, so I missed the first part.",
    "Please send me the notes when you have a moment.",
    "Our results look better than last month.",
    "Let us keep the meeting short today.",
    "I agree with that idea.",
    "Who is going to prepare the slides for Friday?",
    "I can do it if somebody checks the numbers.",
    "The office will be closed on Monday for repairs.",
)


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    start_s: float
    end_s: float


def synthesize_voice(text: str, voice: Voice) -> np.ndarray:
    """espeak-ng speech as float32 mono at 16 kHz, leading/trailing silence trimmed."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", "150", "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    samples = soxr.resample(samples, rate, SAMPLE_RATE_HZ).astype(np.float32)
    voiced = np.flatnonzero(np.abs(samples) > 1e-3)
    return samples[voiced[0] : voiced[-1] + 1] if voiced.size else samples


def compose_dialogue(
    lines: Sequence[tuple[str, str]],
    *,
    voices: Mapping[str, Voice] = VOICES,
    seed: int = 0,
    min_gap_s: float = 0.6,
    max_gap_s: float = 2.0,
    lead_s: float = 0.5,
) -> tuple[np.ndarray, tuple[Turn, ...]]:
    """(speaker, text) lines spoken in order with random pauses; returns audio and turns."""
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = [np.zeros(round(lead_s * SAMPLE_RATE_HZ), np.float32)]
    turns: list[Turn] = []
    cursor = len(pieces[0])
    for index, (speaker, text) in enumerate(lines):
        speech = synthesize_voice(text, voices[speaker])
        turns.append(
            Turn(speaker, text, cursor / SAMPLE_RATE_HZ, (cursor + len(speech)) / SAMPLE_RATE_HZ)
        )
        gap_s = rng.uniform(min_gap_s, max_gap_s) if index + 1 < len(lines) else lead_s
        gap = np.zeros(round(gap_s * SAMPLE_RATE_HZ), np.float32)
        pieces += [speech, gap]
        cursor += len(speech) + len(gap)
    audio = np.concatenate(pieces)
    audio += (rng.standard_normal(len(audio)) * NOISE_RMS).astype(np.float32)
    return np.clip(audio, -1.0, 1.0), tuple(turns)


def meeting_lines(
    duration_s: float, speakers: Sequence[str], *, seed: int = 0
) -> list[tuple[str, str]]:
    """Enough lines for about `duration_s` of meeting: turns of 1-3 lines, the speaker always
    changing at a turn, speakers chosen at random."""
    rng = np.random.default_rng(seed)
    lines: list[tuple[str, str]] = []
    speaker = speakers[0]
    spoken_s = 0.0
    while spoken_s < duration_s:
        for _ in range(int(rng.integers(1, 4))):
            lines.append((speaker, LINES[int(rng.integers(len(LINES)))]))
            spoken_s += 4.0  # ~3 s of speech per line plus its pause
        speaker = str(rng.choice([s for s in speakers if s != speaker]))
    return lines
