"""The H100 run's corpus: 5 s, 30 s and 10 min speech clips, in bench/corpus.py's manifest format.

The device machine has no espeak-ng and a transfer is at most 64 MiB, so speech is synthesised
here once (`seed`, ~1.3 MB) and the clips are tiled from it there (`build`, numpy only):

    python bench/gpu/clips.py seed .gpu/p2/seed          # here (espeak-ng)
    python bench/gpu/clips.py build .gpu/p2/seed DIR     # on the device: DIR/manifest.json

Kinds in the manifest: `clip5` (one ~5 s utterance), `clip30` (30 s of sentences and short
pauses), `clip600` (10 min: the 30 s clips in turn). Several distinct files of each kind so a
closed loop never sends one file to itself back to back.
"""

from __future__ import annotations

import argparse
import json
import sys
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 16_000
CLIP30_S = 30.0
CLIP5_S = 5.0
CLIP600_S = 600.0
VARIANTS = 4  # distinct files per kind
SEED_NAME = "seed.json"


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def write_wav(path: Path, samples: np.ndarray) -> None:
    # voxtral_gateway.pipeline.pcm16.to_pcm16's rule, inline: this script runs numpy-only.
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(pcm.tobytes())


def make_seed(out_dir: Path) -> None:
    """Speak every corpus sentence once (espeak-ng) and store the utterances + their text."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.corpus import SENTENCES, VOICES, synthesize  # espeak-ng lives here only

    entries = []
    for index, text in enumerate(SENTENCES):
        voice = VOICES[index % len(VOICES)]
        name = f"u{index:02d}.wav"
        write_wav(out_dir / name, synthesize(text, voice, 175))
        entries.append({"file": name, "text": text})
    (out_dir / SEED_NAME).write_text(json.dumps(entries, indent=1) + "\n")


def _fill(
    utterances: list[tuple[np.ndarray, str]], start: int, seconds: float, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """Utterances from `start` on, each followed by a 0.3-1.2 s pause, cut to `seconds`."""
    parts: list[np.ndarray] = []
    words: list[str] = []
    total = 0
    limit = int(seconds * SAMPLE_RATE_HZ)
    index = start
    while total < limit:
        samples, text = utterances[index % len(utterances)]
        pause = np.zeros(int(rng.uniform(0.3, 1.2) * SAMPLE_RATE_HZ), dtype=np.float32)
        parts += [samples, pause]
        words.append(text)
        total += len(samples) + len(pause)
        index += 1
    audio = np.concatenate(parts)[:limit]
    # Light noise floor (~45 dB below speech) so silence is not digital zero.
    audio = audio + rng.standard_normal(len(audio)).astype(np.float32) * np.float32(1e-3)
    return audio, " ".join(words)


def build(seed_dir: Path, out_dir: Path) -> Path:
    """Write the clips and `manifest.json` (bench.corpus format) into `out_dir`."""
    seed = json.loads((seed_dir / SEED_NAME).read_text())
    utterances = [(read_wav(seed_dir / entry["file"]), entry["text"]) for entry in seed]
    rng = np.random.default_rng(0)
    items = []

    def emit(kind: str, index: int, audio: np.ndarray, text: str) -> None:
        rel = f"{kind}/{kind}-{index}.wav"
        write_wav(out_dir / rel, audio)
        items.append(
            {
                "id": f"{kind}-{index}",
                "path": rel,
                "duration_s": round(len(audio) / SAMPLE_RATE_HZ, 3),
                "text": text,
                "kind": kind,
                "voices": [],
                "speeds_wpm": [175],
                "snr_db": None,
            }
        )

    clip30 = []
    for index in range(VARIANTS):
        audio5, text5 = _fill(utterances, 2 * index, CLIP5_S, rng)
        emit("clip5", index, audio5, text5)
        audio30, text30 = _fill(utterances, 7 * index, CLIP30_S, rng)
        clip30.append((audio30, text30))
        emit("clip30", index, audio30, text30)
    repeats = int(CLIP600_S // CLIP30_S)
    for index in range(VARIANTS):
        order = [clip30[(index + k) % VARIANTS] for k in range(repeats)]
        emit(
            "clip600",
            index,
            np.concatenate([audio for audio, _ in order]),
            " ".join(text for _, text in order),
        )
    manifest = {
        "version": 1,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "seed": 0,
        "short_kinds": ["clip5", "clip30"],
        "long_minutes": [10],
        "items": items,
    }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seed = sub.add_parser("seed")
    seed.add_argument("out_dir", type=Path)
    built = sub.add_parser("build")
    built.add_argument("seed_dir", type=Path)
    built.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    if args.command == "seed":
        make_seed(args.out_dir)
    else:
        print(build(args.seed_dir, args.out_dir))


if __name__ == "__main__":
    main()
