"""Diarization benchmark: DER on synthetic conversations with known turns, and its cost.

    python -m bench.diarization --out bench/results/<name> [--gateway URL]

Offline part (no engine): the gateway's own VAD segmentation (packed windows), speaker
encoder and clustering over a 6-turn 2-speaker dialogue, a 2-minute 3-speaker dialogue and a
10-minute 4-speaker meeting; DER by pyannote.metrics, encoder time per audio minute. With
`--gateway` (a running gateway in front of an engine), the 10-minute meeting is also sent
with and without speakers, to time what speakers add to the request, and DER is scored on
the `diarized_json` the gateway returned.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import jiwer
import numpy as np
import soundfile as sf
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

from bench.dialogue import SAMPLE_RATE_HZ, Turn, compose_dialogue, meeting_lines
from voxtral_gateway.pipeline.records import SegmentResult, Transcript, Word
from voxtral_gateway.pipeline.segment import vad_params
from voxtral_gateway.pipeline.speakers import SpeakerRequest, SpeakerStage
from voxtral_gateway.pipeline.stream import VadSegmenter, segment_stream
from voxtral_gateway.pipeline.vad import load_detector
from voxtral_gateway.settings import Settings

COLLAR_S = 0.25  # NIST's convention: boundary slack on each side of a reference turn


@dataclass(frozen=True)
class Case:
    name: str
    audio: np.ndarray
    turns: tuple[Turn, ...]


def cases() -> list[Case]:
    six = [
        ("alice", "Good morning, how was the trip?"),
        ("bob", "It was long, but the train was on time."),
        ("alice", "Did you bring the report?"),
        ("bob", "Yes, it is in my bag. I will send it after lunch."),
        ("alice", "Great, thank you."),
        ("bob", "You are welcome."),
    ]
    made = [("dialogue-6-turns-2-speakers", six, 1)]
    made.append(
        ("dialogue-2min-3-speakers", meeting_lines(120, ["alice", "bob", "carl"], seed=2), 2)
    )
    made.append(
        (
            "meeting-10min-4-speakers",
            meeting_lines(600, ["alice", "bob", "carl", "dave"], seed=3),
            3,
        )
    )
    out = []
    for name, lines, seed in made:
        audio, turns = compose_dialogue(lines, seed=seed)
        out.append(Case(name, audio, turns))
    return out


def reference(turns: tuple[Turn, ...]) -> Annotation:
    annotation = Annotation()
    for turn in turns:
        annotation[Segment(turn.start_s, turn.end_s)] = turn.speaker
    return annotation


def hypothesis(segments: list[tuple[float, float, str]]) -> Annotation:
    annotation = Annotation()
    for start_s, end_s, speaker in segments:
        annotation[Segment(start_s, end_s)] = speaker
    return annotation


def der(
    turns: tuple[Turn, ...], segments: list[tuple[float, float, str]], collar_s: float
) -> float:
    metric = DiarizationErrorRate(collar=collar_s, skip_overlap=False)
    return float(metric(reference(turns), hypothesis(segments)))


def der_parts(turns: tuple[Turn, ...], segments: list[tuple[float, float, str]]) -> dict:
    """DER's components with the collar, as fractions of reference speech."""
    metric = DiarizationErrorRate(collar=COLLAR_S, skip_overlap=False)
    parts = metric(reference(turns), hypothesis(segments), detailed=True)
    total = parts["total"]
    return {
        name: round(parts[key] / total, 4)
        for name, key in (
            ("false_alarm", "false alarm"),
            ("missed", "missed detection"),
            ("confusion", "confusion"),
        )
    }


async def diarize_offline(case: Case, settings: Settings, stage: SpeakerStage) -> dict:
    """The gateway's segmentation and speaker stage, without an engine."""
    detector = load_detector(settings.vad)
    segmenter = VadSegmenter(
        detector, vad_params(settings.vad), warmup_s=settings.vad.stream_warmup_s
    )
    track = stage.track(SpeakerRequest(), pad_s=settings.vad.speech_pad_ms / 1000)
    started = time.perf_counter()
    batches = list(segment_stream(iter([case.audio]), segmenter, chunk_s=settings.vad.chunk_s))
    vad_s = time.perf_counter() - started
    # Packed windows as the gateway sends them; a timed word per region stands for the text.
    results = [
        SegmentResult(
            s.index,
            s.start_s,
            s.end_s,
            " ".join("x" for _ in s.regions),
            phrases=tuple(Word("x", r.start_s, r.end_s) for r in s.regions),
        )
        for b in batches
        for s in b.segments
    ]
    # Embedding only starts now, so this times the encoder (and clustering) alone.
    started = time.perf_counter()
    for batch in batches:
        track.add_chunk(batch)
    duration_s = len(case.audio) / SAMPLE_RATE_HZ
    labelled = await track.attach(Transcript("", tuple(results), duration_s, "en"))
    encoder_s = time.perf_counter() - started
    segments = [(s.start_s, s.end_s, s.speaker or "?") for s in labelled.segments]
    minutes = len(case.audio) / SAMPLE_RATE_HZ / 60
    return {
        "case": case.name,
        "audio_min": round(minutes, 2),
        "turns": len(case.turns),
        "speakers_true": len({t.speaker for t in case.turns}),
        "speakers_found": len({s[2] for s in segments}),
        "segments": len(segments),
        "der_collar_0.25": round(der(case.turns, segments, COLLAR_S), 4),
        "der_no_collar": round(der(case.turns, segments, 0.0), 4),
        **der_parts(case.turns, segments),
        "turns_attributed": turns_attributed(case.turns, segments),
        "vad_s": round(vad_s, 2),
        "encoder_s_per_audio_min": round(encoder_s / minutes, 2),
    }


def encoder_cost(stage: SpeakerStage, audio: np.ndarray, rounds: int = 3) -> float:
    """Encoder seconds per audio minute on 60 s of speech in 3 s regions, best of `rounds`
    (the least disturbed by other jobs on a shared machine)."""
    minute = audio[: 60 * SAMPLE_RATE_HZ]
    regions = [
        minute[i : i + 3 * SAMPLE_RATE_HZ] for i in range(0, len(minute), 3 * SAMPLE_RATE_HZ)
    ]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for future in [stage.submit(region) for region in regions]:
            future.result()
        best = min(best, time.perf_counter() - started)
    return round(best / (len(minute) / SAMPLE_RATE_HZ / 60), 2)


def turns_attributed(turns: tuple[Turn, ...], segments: list[tuple[float, float, str]]) -> str:
    """Turns whose overlapping segments all carry the turn's speaker's label (after mapping
    each true speaker to the label it most often got)."""
    votes: dict[str, dict[str, float]] = {}
    for turn in turns:
        for start_s, end_s, label in segments:
            overlap = min(end_s, turn.end_s) - max(start_s, turn.start_s)
            if overlap > 0:
                votes.setdefault(turn.speaker, {}).setdefault(label, 0.0)
                votes[turn.speaker][label] += overlap
    mapping = {speaker: max(v, key=v.__getitem__) for speaker, v in votes.items()}
    good = 0
    for turn in turns:
        labels = {
            label
            for start_s, end_s, label in segments
            if min(end_s, turn.end_s) - max(start_s, turn.start_s) > 0
        }
        good += labels == {mapping.get(turn.speaker)}
    return f"{good}/{len(turns)}"


def turn_wer(turns: tuple[Turn, ...], segments: list[dict]) -> float:
    """WER with each segment's text scored against the turn it overlaps most (its words
    moved to a neighbouring turn count as errors there), all turns together."""
    said: list[list[str]] = [[] for _ in turns]
    for segment in segments:
        overlaps = [min(segment["end"], t.end_s) - max(segment["start"], t.start_s) for t in turns]
        said[overlaps.index(max(overlaps))].append(segment["text"])
    return corpus_wer([t.text for t in turns], [" ".join(s) for s in said])


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate over all pairs, on lower-cased words without punctuation."""

    def words(text: str) -> str:
        return " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())

    kept = [(words(r), words(h)) for r, h in zip(references, hypotheses, strict=True)]
    kept = [(r, h) for r, h in kept if r]
    return round(jiwer.wer([r for r, _ in kept], [h for _, h in kept]), 4)


def through_gateway(case: Case, gateway: str, repeats: int) -> dict:
    """Wall time of the request without speakers (json, verbose_json) and with them
    (diarized_json), in rounds of the three back to back, `repeats` rounds; engine calls per
    request from the gateway's /metrics; text WER of each; DER of the speakers' answer."""
    buffer = io.BytesIO()
    sf.write(buffer, case.audio, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    wav = buffer.getvalue()
    modes = (("plain", "json"), ("plain_verbose", "verbose_json"), ("speakers", "diarized_json"))
    times: dict[str, list[float]] = {mode: [] for mode, _ in modes}
    calls: dict[str, list[int]] = {mode: [] for mode, _ in modes}
    bodies: dict[str, dict] = {}
    timings: list[str] = []
    with httpx.Client(base_url=gateway, timeout=3600) as client:
        for _ in range(repeats):
            for mode, fmt in modes:
                windows = engine_windows(client)
                started = time.perf_counter()
                response = client.post(
                    "/v1/audio/transcriptions",
                    files={"file": ("meeting.wav", wav, "audio/wav")},
                    data={"model": "m", "response_format": fmt},
                )
                response.raise_for_status()
                times[mode].append(time.perf_counter() - started)
                calls[mode].append(engine_windows(client) - windows)
                bodies[mode] = response.json()
                if mode == "speakers":
                    timings.append(response.headers.get("server-timing", ""))
    body = bodies["speakers"]
    segments = [(s["start"], s["end"], s["speaker"]) for s in body["segments"]]
    best = {mode: min(times[mode]) for mode in times}
    return {
        "case": case.name,
        **{f"{mode}_s": [round(t, 1) for t in times[mode]] for mode in times},
        # What speakers add to the same request without them (json: the same engine calls),
        # best of the repeats each; and against verbose_json, as the first run measured.
        "added_pct_best": round(100 * (best["speakers"] / best["plain"] - 1), 1),
        "added_pct_best_vs_verbose": round(100 * (best["speakers"] / best["plain_verbose"] - 1), 1),
        # Per round (the modes of one round ran back to back, so under the same load).
        "added_pct_per_round": [
            round(100 * (s / p - 1), 1)
            for s, p in zip(times["speakers"], times["plain"], strict=True)
        ],
        "engine_calls": calls,
        "server_timing_speakers": timings,
        "der_collar_0.25": round(der(case.turns, segments, COLLAR_S), 4),
        **der_parts(case.turns, segments),
        "turns_attributed": turns_attributed(case.turns, segments),
        "speakers_found": len({s[2] for s in segments}),
        **{
            f"wer_{mode}_text": corpus_wer([" ".join(t.text for t in case.turns)], [b["text"]])
            for mode, b in bodies.items()
        },
        "wer_turn_attributed": turn_wer(case.turns, body["segments"]),
    }


def engine_windows(client: httpx.Client) -> int:
    """The gateway's count of engine calls so far (its /metrics)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("voxtral_engine_windows_total "):
            return round(float(line.split()[1]))
    raise RuntimeError("the gateway's /metrics has no voxtral_engine_windows_total")


async def main_async(args: argparse.Namespace) -> dict:
    settings = Settings()
    stage = SpeakerStage(settings.speakers)
    stage.submit(np.zeros(SAMPLE_RATE_HZ, np.float32)).result()  # load torch and the weights
    rows = []
    all_cases = cases()
    try:
        for case in [] if args.gateway_only else all_cases:
            rows.append(await diarize_offline(case, settings, stage))
            print(json.dumps(rows[-1]), flush=True)
        if not args.gateway_only:
            rows.append(
                {"encoder_s_per_audio_min_best_of_3": encoder_cost(stage, all_cases[-1].audio)}
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        stage.close()
    gateway_rows = []
    if args.gateway:
        gateway_rows.append(through_gateway(all_cases[-1], args.gateway, args.repeats))
        print(json.dumps(gateway_rows[-1]), flush=True)
    return {"offline": rows, "gateway": gateway_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--gateway", help="base URL of a running gateway (no /v1)")
    parser.add_argument("--gateway-only", action="store_true", help="skip the offline part")
    parser.add_argument("--repeats", type=int, default=2, help="requests per mode (gateway)")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "gateway.json" if args.gateway_only else "results.json"
    (out / name).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
