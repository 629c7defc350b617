"""Detected-language accuracy of the gateway's audio detector (Whisper base `detect_language`
through CTranslate2), strategy by strategy, on the espeak-ng multilingual corpus.

    python -m bench.language_detection --out bench/results/NAME

Clips: the corpus's 13 (bench/multilingual.py, two per language, one English) and three
held-out sentences per language, in the corpus's voices; for French and Portuguese also in
espeak-ng's default voice (the corpus's `fr+f2` / `pt+f4` were chosen on this detector, so
the default voice keeps the measure honest). Strategies, each from the detector's full list
of 99 language probabilities:

- `plain`: the most probable language (what the engine itself picks; vLLM agrees).
- `candidates`: the most probable of the corpus's seven languages (`language_candidates`).
- `joined`: one detection over all five sentences of a voice joined (~20 s): does more audio
  of the same voice help? (`joined+candidates`: the same, restricted.)

Writes detection.json (every clip's top five) and detection.md; no engine needed.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.multilingual import LANGUAGES, Utterance, held_out_utterances, speak, utterances
from voxtral_gateway.pipeline.language import load_language_detector, most_probable
from voxtral_gateway.settings import Settings

PAUSE = np.zeros(8_000, dtype=np.float32)  # 0.5 s between joined sentences
DEFAULT_VOICES = {"fr": "fr", "pt": "pt"}  # where the corpus's voice is a chosen variant


def clips() -> list[tuple[str, Utterance]]:
    """(set, utterance): `corpus` for the 13, `held-out` for the rest, every voice measured."""
    chosen = [("corpus", u) for u in utterances(LANGUAGES, 2)]
    chosen += [("held-out", u) for u in held_out_utterances(LANGUAGES)]
    for language, voice in DEFAULT_VOICES.items():
        chosen += [
            (f"{kind} (voice {voice})", Utterance(u.language, voice, u.text, u.english))
            for kind, u in list(chosen)
            if u.language == language and kind in ("corpus", "held-out")
        ]
    return chosen


def run(model: str) -> dict[str, list[dict[str, object]]]:
    detector = load_language_detector(model, Settings().align.cache_dir.expanduser())
    assert detector is not None
    rows, groups = [], {}
    for kind, utterance in clips():
        samples = speak(utterance)
        probabilities = detector.probabilities(samples)
        rows.append(
            {
                "set": kind,
                "language": utterance.language,
                "voice": utterance.voice,
                "duration_s": round(len(samples) / 16_000, 2),
                "text": utterance.text,
                "plain": most_probable(probabilities),
                "candidates": most_probable(probabilities, LANGUAGES),
                "top5": [(code, round(p, 3)) for code, p in probabilities[:5]],
            }
        )
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
        groups.setdefault((utterance.language, utterance.voice), []).append(samples)
    joined = []
    for (language, voice), parts in groups.items():
        samples = np.concatenate([piece for part in parts for piece in (part, PAUSE)])
        probabilities = detector.probabilities(samples)
        joined.append(
            {
                "language": language,
                "voice": voice,
                "sentences": len(parts),
                "duration_s": round(len(samples) / 16_000, 1),
                "plain": most_probable(probabilities),
                "candidates": most_probable(probabilities, LANGUAGES),
                "top5": [(code, round(p, 3)) for code, p in probabilities[:5]],
            }
        )
        print(json.dumps(joined[-1], ensure_ascii=False), flush=True)
    return {"clips": rows, "joined": joined}


def _right(rows: list[dict[str, object]], strategy: str) -> str:
    return f"{sum(r[strategy] == r['language'] for r in rows)}/{len(rows)}"


def summary(result: dict[str, list[dict[str, object]]]) -> str:
    rows, joined = result["clips"], result["joined"]
    lines = [
        "| clips | plain | candidates |",
        "|---|---|---|",
    ]
    for name in dict.fromkeys(str(r["set"]) for r in rows):
        mine = [r for r in rows if r["set"] == name]
        lines.append(f"| {name} | {_right(mine, 'plain')} | {_right(mine, 'candidates')} |")
    lines += [
        "",
        "| language | voice | plain | candidates | joined (s): plain | joined: candidates |",
        "|---|---|---|---|---|---|",
    ]
    for group in joined:
        key = (group["language"], group["voice"])
        mine = [r for r in rows if (r["language"], r["voice"]) == key]
        lines.append(
            f"| {group['language']} | {group['voice']} | {_right(mine, 'plain')} | "
            f"{_right(mine, 'candidates')} | {group['plain']} ({group['duration_s']}) | "
            f"{group['candidates']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.language_detection", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="base", help="detector: `base` or a CTranslate2 folder")
    args = parser.parse_args(argv)
    result = run(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    command = "python -m bench.language_detection " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    (args.out / "detection.md").write_text(
        f"# Detected-language accuracy by strategy (Whisper {args.model}, CTranslate2)\n\n"
        f"Command: `{command}`\n\n"
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {espeak.split(' Data')[0].strip()}\n\n"
        f"{summary(result)}\n\n"
        "Every clip's top five: detection.json.\n",
        encoding="utf-8",
    )
    print(summary(result))


if __name__ == "__main__":
    main()
