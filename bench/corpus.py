"""Deterministic speech corpus with known transcripts, built from espeak-ng.

    python -m bench.corpus [OUT_DIR] [--long 1,10,60] [--seed 0]

Writes 16 kHz mono 16-bit WAV files and ``manifest.json`` (path relative to the manifest,
duration_s, reference text, kind, voice, speed, SNR). The same arguments and espeak-ng version
give the same bytes: every random choice (pauses, noise) comes from one seeded generator.

Kinds:
- ``clean``: one sentence, short lead-in/out silence.
- ``pauses``: three sentences separated by 1-2.5 s of silence (exercises VAD cuts).
- ``noisy``: one or two sentences under white noise at 20, 10 or 5 dB SNR.
- ``long``: 1/10/60-minute files of all voices and speeds, with short and long pauses and
  light noise (25 dB SNR), for long-form accuracy and throughput.

The audio is synthetic: good for relative comparisons (gateway vs direct, VAD on vs off), not a
stand-in for real-world accuracy.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from voxtral_gateway.pipeline.pcm16 import from_pcm16, to_pcm16

SAMPLE_RATE_HZ = 16_000
MANIFEST_NAME = "manifest.json"
DEFAULT_OUT_DIR = Path(".cache/corpus")
SPEECH_RMS_DBFS = -20.0
LONG_NOISE_SNR_DB = 25.0
NOISY_SNRS_DB = (20.0, 10.0, 5.0)

# Harvard sentences (IEEE 1969, public domain) plus a few with numbers, which espeak-ng reads as
# words and ASR models often write as digits: the WER normaliser must treat them alike.
SENTENCES: tuple[str, ...] = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The meeting starts at 10 and ends at 12.",
    "We counted 3 boats and 7 birds near the shore.",
    "Please call me back in 15 minutes.",
    "The train leaves from platform 9 every hour.",
)
VOICES: tuple[str, ...] = ("en-us", "en-gb", "en+f3")
SPEEDS_WPM: tuple[int, ...] = (150, 175, 200)


@dataclass(frozen=True)
class CorpusItem:
    """One manifest entry; ``path`` is relative to the manifest's folder."""

    id: str
    path: str
    duration_s: float
    text: str
    kind: str
    voices: tuple[str, ...]
    speeds_wpm: tuple[int, ...]
    snr_db: float | None


@dataclass(frozen=True)
class _Utterance:
    text: str
    voice: str
    speed_wpm: int
    samples: np.ndarray  # float32, 16 kHz, RMS at SPEECH_RMS_DBFS


def synthesize(text: str, voice: str, speed_wpm: int) -> np.ndarray:
    """Speak ``text`` with espeak-ng; float32 mono at 16 kHz, RMS normalised."""
    with tempfile.TemporaryDirectory() as tmp:
        # -w writes a complete header; --stdout leaves the length field unset.
        out = Path(tmp) / "u.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(out), text],
            check=True,
            capture_output=True,
        )
        raw = out.read_bytes()
    samples, rate_hz = _read_wav(raw)
    samples = resample(samples, rate_hz, SAMPLE_RATE_HZ)
    samples = _trim_silence(samples)
    return _scale_to_dbfs(samples, SPEECH_RMS_DBFS)


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Band-limited FFT resampling; exact and deterministic for short utterances."""
    if from_hz == to_hz:
        return samples.astype(np.float32)
    n_out = round(len(samples) * to_hz / from_hz)
    spectrum = np.fft.rfft(samples.astype(np.float64))
    keep = min(len(spectrum), n_out // 2 + 1)
    resized = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    resized[:keep] = spectrum[:keep]
    return (np.fft.irfft(resized, n_out) * (n_out / len(samples))).astype(np.float32)


def _read_wav(raw: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(raw)) as wav:
        rate_hz = wav.getframerate()
        frames = wav.readframes(wav.getnframes())
        channels = wav.getnchannels()
    pcm = from_pcm16(frames)
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return pcm, rate_hz


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16-bit PCM, 16 kHz mono; clipped rather than wrapped."""
    pcm = to_pcm16(samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(pcm.tobytes())


def _trim_silence(samples: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return samples
    return samples[loud[0] : loud[-1] + 1]


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


def _scale_to_dbfs(samples: np.ndarray, dbfs: float) -> np.ndarray:
    rms = _rms(samples)
    if rms == 0.0:
        return samples
    return (samples * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE_HZ), dtype=np.float32)


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise whose power is ``snr_db`` below the speech's (speech level, not file level)."""
    speech_rms = 10 ** (SPEECH_RMS_DBFS / 20)
    noise_rms = speech_rms / 10 ** (snr_db / 20)
    noise = rng.standard_normal(len(samples)).astype(np.float32) * np.float32(noise_rms)
    return samples + noise


def _concat(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32) if parts else _silence(0)


class _Builder:
    """Synthesises each (sentence, voice, speed) once and assembles files from them."""

    def __init__(self, out_dir: Path, seed: int) -> None:
        self.out_dir = out_dir
        self.seed = seed
        self._cache: dict[tuple[int, str, int], _Utterance] = {}
        self.items: list[CorpusItem] = []

    def utterance(self, sentence_index: int, voice: str, speed_wpm: int) -> _Utterance:
        key = (sentence_index, voice, speed_wpm)
        if key not in self._cache:
            text = SENTENCES[sentence_index]
            self._cache[key] = _Utterance(
                text, voice, speed_wpm, synthesize(text, voice, speed_wpm)
            )
        return self._cache[key]

    def emit(
        self,
        item_id: str,
        kind: str,
        utterances: Sequence[_Utterance],
        samples: np.ndarray,
        snr_db: float | None,
    ) -> None:
        rel = Path(kind) / f"{item_id}.wav"
        write_wav(self.out_dir / rel, samples)
        self.items.append(
            CorpusItem(
                id=item_id,
                path=rel.as_posix(),
                duration_s=round(len(samples) / SAMPLE_RATE_HZ, 6),
                text=" ".join(u.text for u in utterances),
                kind=kind,
                voices=tuple(sorted({u.voice for u in utterances})),
                speeds_wpm=tuple(sorted({u.speed_wpm for u in utterances})),
                snr_db=snr_db,
            )
        )

    def rng(self, *stream: int) -> np.random.Generator:
        """One generator per file family, so ``--long 10`` alone gives the same 10-min file."""
        return np.random.default_rng([self.seed, *stream])

    def _rotation(self, index: int) -> tuple[str, int]:
        return VOICES[index % len(VOICES)], SPEEDS_WPM[(index // len(VOICES)) % len(SPEEDS_WPM)]

    def build_clean(self) -> None:
        for i in range(len(SENTENCES)):
            utt = self.utterance(i, *self._rotation(i))
            samples = _concat([_silence(0.25), utt.samples, _silence(0.25)])
            self.emit(f"clean-{i:02d}", "clean", [utt], samples, None)

    def build_pauses(self) -> None:
        rng = self.rng(1)
        for clip in range(len(SENTENCES) // 3):
            utts = [self.utterance(clip * 3 + k, *self._rotation(clip + k)) for k in range(3)]
            parts: list[np.ndarray] = [_silence(0.3)]
            for utt in utts:
                parts += [utt.samples, _silence(float(rng.uniform(1.0, 2.5)))]
            self.emit(f"pauses-{clip:02d}", "pauses", utts, _concat(parts), None)

    def build_noisy(self) -> None:
        rng = self.rng(2)
        for clip in range(12):
            snr_db = NOISY_SNRS_DB[clip % len(NOISY_SNRS_DB)]
            count = 1 + clip % 2
            utts = [
                self.utterance((clip * 2 + k) % len(SENTENCES), *self._rotation(clip + k + 1))
                for k in range(count)
            ]
            parts = [_silence(0.4)]
            for utt in utts:
                parts += [utt.samples, _silence(0.6)]
            noisy = add_noise(_concat(parts), snr_db, rng)
            self.emit(f"noisy-{clip:02d}-snr{snr_db:g}", "noisy", utts, noisy, snr_db)

    def _long_order(self, rng: np.random.Generator) -> Iterator[_Utterance]:
        combos = [(s, v, w) for s in range(len(SENTENCES)) for v in VOICES for w in SPEEDS_WPM]
        while True:
            for index in rng.permutation(len(combos)):
                yield self.utterance(*combos[int(index)])

    def build_long(self, minutes: int) -> None:
        rng = self.rng(3, minutes)
        target = minutes * 60 * SAMPLE_RATE_HZ
        parts: list[np.ndarray] = [_silence(0.5)]
        used: list[_Utterance] = []
        length = len(parts[0])
        for utt in self._long_order(rng):
            # Mostly sentence gaps; now and then a long pause, where VAD should cut.
            is_long_pause = rng.random() < 0.1
            gap_s = float(rng.uniform(3.0, 6.0) if is_long_pause else rng.uniform(0.3, 1.2))
            gap = _silence(gap_s)
            if length + len(utt.samples) + len(gap) > target:
                break
            parts += [utt.samples, gap]
            used.append(utt)
            length += len(utt.samples) + len(gap)
        parts.append(_silence((target - length) / SAMPLE_RATE_HZ))
        noisy = add_noise(_concat(parts)[:target], LONG_NOISE_SNR_DB, rng)
        self.emit(f"long-{minutes:03d}min", "long", used, noisy, LONG_NOISE_SNR_DB)


SHORT_KINDS = ("clean", "pauses", "noisy")


def build_corpus(
    out_dir: Path,
    *,
    long_minutes: Sequence[int] = (1, 10, 60),
    short_kinds: Sequence[str] = SHORT_KINDS,
    seed: int = 0,
) -> Path:
    """Build the corpus into ``out_dir``; returns the manifest path."""
    unknown = set(short_kinds) - set(SHORT_KINDS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; choose from {SHORT_KINDS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    builder = _Builder(out_dir, seed)
    for kind in SHORT_KINDS:
        if kind in short_kinds:
            getattr(builder, f"build_{kind}")()
    for minutes in long_minutes:
        builder.build_long(minutes)
    manifest = {
        "version": 1,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "seed": seed,
        "short_kinds": list(short_kinds),
        "long_minutes": list(long_minutes),
        "items": [asdict(item) for item in builder.items],
    }
    path = out_dir / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def load_manifest(corpus_dir: Path) -> list[CorpusItem]:
    """Items of a built corpus, in manifest order."""
    data = json.loads((corpus_dir / MANIFEST_NAME).read_text())
    return [
        CorpusItem(
            **{**item, "voices": tuple(item["voices"]), "speeds_wpm": tuple(item["speeds_wpm"])}
        )
        for item in data["items"]
    ]


def _parse_minutes(value: str) -> list[int]:
    if value.strip().lower() in {"", "none", "0"}:
        return []
    return [int(part) for part in value.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument(
        "--long", type=_parse_minutes, default=[1, 10, 60], help="long-form minutes, or 'none'"
    )
    parser.add_argument(
        "--kinds", default=",".join(SHORT_KINDS), help="short kinds to build, or 'none'"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k and k != "none"]
    manifest = build_corpus(args.out_dir, long_minutes=args.long, short_kinds=kinds, seed=args.seed)
    items = load_manifest(args.out_dir)
    total_s = sum(item.duration_s for item in items)
    print(f"{manifest}: {len(items)} files, {total_s / 60:.1f} min of audio")


if __name__ == "__main__":
    main()
