"""Languages through the gateway: per-language WER, detected-language accuracy and
translation chrF on the espeak-ng multilingual corpus (bench/multilingual.py).

    python -m bench.languages --gateway http://127.0.0.1:8080 --out bench/results/NAME

Every clip goes through the OpenAI SDK twice: `transcriptions` (verbose_json, no language
given: the reported language is the detection) and `translations` (English text, scored
with sacrebleu's chrF against the corpus's reference translation). Writes results.json and
a results.md table; the command line goes into results.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import openai
import sacrebleu

from bench.accuracy import wer
from bench.corpus import write_wav
from bench.multilingual import LANGUAGES, speak, utterances


def run(gateway_url: str, per_language: int) -> list[dict[str, object]]:
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="x", max_retries=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, utterance in enumerate(utterances(LANGUAGES, per_language)):
            samples = speak(utterance)
            path = Path(tmp) / f"{number}.wav"
            write_wav(path, samples)
            started = time.perf_counter()
            heard = client.audio.transcriptions.create(
                model="m", file=path.open("rb"), response_format="verbose_json"
            )
            translated = client.audio.translations.create(model="m", file=path.open("rb"))
            rows.append(
                {
                    "language": utterance.language,
                    "voice": utterance.voice,
                    "duration_s": round(len(samples) / 16_000, 2),
                    "reference": utterance.text,
                    "transcript": heard.text,
                    "wer": round(wer(utterance.text, heard.text), 3),
                    "detected": heard.language,
                    "english_reference": utterance.english,
                    "translation": translated.text,
                    "chrf": round(
                        sacrebleu.sentence_chrf(translated.text, [utterance.english]).score, 1
                    ),
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    return rows


def summary(rows: list[dict[str, object]]) -> str:
    lines = [
        "| language | clips | WER (mean) | detected right | chrF (corpus) |",
        "|---|---|---|---|---|",
    ]
    for language in LANGUAGES:
        mine = [r for r in rows if r["language"] == language]
        if not mine:
            continue
        mean_wer = sum(float(r["wer"]) for r in mine) / len(mine)  # type: ignore[arg-type]
        right = sum(r["detected"] == language for r in mine)
        chrf = sacrebleu.corpus_chrf(
            [str(r["translation"]) for r in mine], [[str(r["english_reference"]) for r in mine]]
        ).score
        lines.append(
            f"| {language} | {len(mine)} | {mean_wer:.3f} | {right}/{len(mine)} | {chrf:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.languages", description=__doc__)
    parser.add_argument("--gateway", required=True, help="gateway base URL (no /v1)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-language", type=int, default=2)
    parser.add_argument("--profile", default="cpu-whisper-base", help="for the record only")
    args = parser.parse_args(argv)
    rows = run(args.gateway, args.per_language)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    command = "python -m bench.languages " + " ".join(sys.argv[1:] if argv is None else argv)
    (args.out / "results.md").write_text(
        f"# Languages on {args.profile}\n\n"
        f"Command: `{command}` (gateway in front of `python -m serve engine {args.profile}`)\n\n"
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, espeak-ng corpus bench/multilingual.py\n\n"
        f"{summary(rows)}\n\n"
        "Per clip (transcript, detection, translation): results.json.\n",
        encoding="utf-8",
    )
    print(summary(rows))


if __name__ == "__main__":
    main()
