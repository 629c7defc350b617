"""Word-timing accuracy and cost of the aligner, against audio whose word edges are known.

Ground truth: every word is synthesised alone by espeak-ng and placed at a recorded offset,
either after a pause (0.15-0.8 s) or touching the previous word (no pause), over -50 dBFS
noise. A word's true start/end is its first/last sample above 1e-3 (as tests/fixtures trims).

Two measurements:
  engine: the gateway's own pipeline (VAD -> engine -> aligner) on English clips, scored on the
          words the engine heard right (matched to the reference in order);
  reference: the aligner alone, given the reference text, on English, German, French and
          Spanish clips (no multilingual engine needed).

    PYTHONPATH=$PWD .venv/bin/python -m bench.word_timing --engine-url http://127.0.0.1:18001 \
        --out bench/results/cpu-word-timing
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import io
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE_HZ = 16_000
TEXTS = {
    "en": "the quick brown fox jumps over the lazy dog while our meeting will start after "
    "the coffee break and she opened the window to let the fresh air in",
    "de": "der schnelle braune Fuchs springt über den faulen Hund und wir trinken heute "
    "Abend einen Kaffee im Garten",
    "fr": "le petit chat dort sur la chaise pendant que nous préparons le dîner dans la "
    "cuisine avec nos amis",
    "es": "el perro corre por el parque cada mañana mientras mi hermana lee el periódico "
    "en la terraza",
}
VOICES = {"en": "en-us", "de": "de", "fr": "fr", "es": "es"}


@dataclass(frozen=True)
class TrueWord:
    word: str
    start_s: float
    end_s: float


def _speak(word: str, voice: str) -> np.ndarray:
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "160", "--stdout", word], check=True, capture_output=True
    ).stdout
    samples, rate = sf.read(io.BytesIO(out), dtype="float32")
    samples = soxr.resample(samples, rate, SAMPLE_RATE_HZ).astype(np.float32)
    voiced = np.flatnonzero(np.abs(samples) > 1e-3)
    return samples[voiced[0] : voiced[-1] + 1]


def compose(text: str, voice: str, *, seed: int) -> tuple[np.ndarray, list[TrueWord]]:
    """Words placed one after another; about half follow a pause, half touch the last word."""
    rng = np.random.default_rng(seed)
    pieces, truth, cursor = [np.zeros(int(0.5 * SAMPLE_RATE_HZ), np.float32)], [], 0.5
    for word in text.split():
        gap = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.15, 0.8))
        pieces.append(np.zeros(int(gap * SAMPLE_RATE_HZ), np.float32))
        cursor += int(gap * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
        audio = _speak(word, voice)
        pieces.append(audio)
        truth.append(TrueWord(word, cursor, cursor + len(audio) / SAMPLE_RATE_HZ))
        cursor += len(audio) / SAMPLE_RATE_HZ
    pieces.append(np.zeros(int(0.5 * SAMPLE_RATE_HZ), np.float32))
    samples = np.concatenate(pieces)
    samples += (
        np.random.default_rng(seed + 1).standard_normal(len(samples)).astype(np.float32) * 0.003
    )
    return np.clip(samples, -1, 1), truth


def _norm(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


def errors(truth: list[TrueWord], words: list[tuple[str, float, float]]) -> list[float]:
    """|start error| and |end error| (seconds) of each hypothesis word matched to the truth."""
    matcher = difflib.SequenceMatcher(
        a=[_norm(t.word) for t in truth], b=[_norm(w[0]) for w in words], autojunk=False
    )
    out: list[float] = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            t, w = truth[block.a + k], words[block.b + k]
            out += [abs(w[1] - t.start_s), abs(w[2] - t.end_s)]
    return out


def _summary(errs: list[float]) -> dict[str, float]:
    a = np.array(errs) * 1000
    return {
        "edges": len(a),
        "median_ms": round(float(np.median(a)), 1),
        "p90_ms": round(float(np.percentile(a, 90)), 1),
        "max_ms": round(float(a.max()), 1),
    }


def run_reference(model: str, cache_dir: Path, seeds: int) -> dict[str, object]:
    from voxtral_gateway.pipeline.align import WordAligner
    from voxtral_gateway.whisper_ct2 import ct2_model_dir

    aligner = WordAligner(ct2_model_dir(model, cache_dir))
    report: dict[str, object] = {}
    total_audio, total_cpu = 0.0, 0.0
    for lang, text in TEXTS.items():
        if model.endswith(".en") and lang != "en":
            continue
        errs: list[float] = []
        for seed in range(seeds):
            samples, truth = compose(text, VOICES[lang], seed=seed)
            started = time.process_time()
            words = aligner.align(samples, text, offset_s=0.0, language=lang)
            total_cpu += time.process_time() - started
            total_audio += len(samples) / SAMPLE_RATE_HZ
            errs += errors(truth, [(w.word, w.start_s, w.end_s) for w in words])
        report[lang] = _summary(errs)
    report["cpu_s_per_audio_min"] = round(total_cpu / total_audio * 60, 2)
    return report


async def run_engine(engine_url: str, model: str, cache_dir: Path, seeds: int) -> dict:
    """The gateway's pipeline in-process (VAD, engine, aligner), English clips."""
    from voxtral_gateway.options import TranscriptionOptions
    from voxtral_gateway.runtime import open_runtime
    from voxtral_gateway.settings import AlignSettings, Settings

    settings = Settings(
        upstream_urls=[engine_url], align=AlignSettings(model=model, cache_dir=cache_dir)
    )
    errs: list[float] = []
    heard = total = 0
    async with open_runtime(settings) as runtime:
        for seed in range(seeds):
            samples, truth = compose(TEXTS["en"], "en-us", seed=100 + seed)
            buffer = io.BytesIO()
            sf.write(buffer, samples, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
            transcript = await runtime.service.transcribe(
                buffer.getvalue(), TranscriptionOptions(language="en", word_timestamps=True)
            )
            words = [(w.word, w.start_s, w.end_s) for s in transcript.segments for w in s.words]
            seed_errs = errors(truth, words)
            heard += len(seed_errs) // 2
            total += len(truth)
            errs += seed_errs
    return {"en": _summary(errs), "words_matched": f"{heard}/{total}"}


async def run_long_request(engine_url: str, model: str, cache_dir: Path, minutes: float) -> dict:
    """Wall time of one long request through the pipeline, without and with word timing."""
    from tests.fixtures.audio import SENTENCES, compose_speech, synthesize
    from voxtral_gateway.options import TranscriptionOptions
    from voxtral_gateway.runtime import open_runtime
    from voxtral_gateway.settings import AlignSettings, Settings

    samples, _ = compose_speech(minutes * 60, [synthesize(t) for t in SENTENCES], SENTENCES)
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    settings = Settings(
        upstream_urls=[engine_url], align=AlignSettings(model=model, cache_dir=cache_dir)
    )
    report: dict[str, object] = {"audio_min": minutes, "model": model}
    async with open_runtime(settings) as runtime:
        await runtime.aligner.get()
        for words in (False, True, False, True):
            started = time.perf_counter()
            transcript = await runtime.service.transcribe(
                buffer.getvalue(), TranscriptionOptions(language="en", word_timestamps=words)
            )
            key = "with_words_s" if words else "without_words_s"
            report.setdefault(key, []).append(round(time.perf_counter() - started, 1))  # type: ignore[union-attr]
            report["words"] = sum(len(s.words) for s in transcript.segments)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-url", help="Whisper engine for the engine run; omit to skip")
    parser.add_argument("--models", default="base,tiny.en")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/align"))
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--long-minutes", type=float, help="only time one request this long, with/without words"
    )
    args = parser.parse_args()
    if args.long_minutes:
        model = args.models.split(",")[0]
        report = asyncio.run(
            run_long_request(args.engine_url, model, args.cache_dir, args.long_minutes)
        )
        print(json.dumps(report))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"long-request-{model}.json").write_text(
                json.dumps(report, indent=2) + "\n"
            )
        return
    results: dict[str, object] = {}
    for model in args.models.split(","):
        results[f"reference/{model}"] = run_reference(model, args.cache_dir, args.seeds)
        print(json.dumps({model: results[f"reference/{model}"]}))
        if args.engine_url:
            results[f"engine/{model}"] = asyncio.run(
                run_engine(args.engine_url, model, args.cache_dir, args.seeds)
            )
            print(json.dumps({f"engine/{model}": results[f"engine/{model}"]}))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
