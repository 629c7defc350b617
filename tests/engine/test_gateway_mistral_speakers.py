"""Mistral's `diarize=true` through the real `mistralai` SDK: Whisper tiny.en on vLLM plus the
real GE2E encoder, on espeak-ng voices taking turns (bench/dialogue.py). Synthetic voices are
easier to tell apart than people: this proves the wiring and the attribution, not real-world
accuracy (bench/results/cpu-speakers/ has the DER figures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mistralai.client import Mistral

from bench.accuracy import wer
from bench.dialogue import Turn
from tests.fixtures.dialogue import (
    reference_clip,
    speaker_of_each_turn,
    write_dialogue,
)

pytestmark = pytest.mark.engine

FOUR_TURNS = [
    ("alice", "Good morning, how was the trip?"),
    ("bob", "It was long, but the train was on time."),
    ("alice", "Did you bring the report?"),
    ("bob", "Yes, it is in my bag."),
]
MAX_WER = 0.2  # espeak-ng turns through Whisper tiny.en measure ~0.0-0.1


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[Turn, ...]]:
    return write_dialogue(tmp_path_factory.mktemp("mistral_speakers"), FOUR_TURNS, seed=3)


def test_diarize_with_speaker_references_names_every_turn(whisper_gateway, dialogue) -> None:
    path, turns = dialogue
    references = {who: reference_clip(who) for who in ("bob", "alice")}
    client = Mistral(api_key="x", server_url=f"{whisper_gateway.base_url}/mistral")
    response = client.audio.transcriptions.complete(
        model="voxtral-mini-latest",
        file={"file_name": path.name, "content": path.read_bytes()},
        diarize=True,
        speaker_references=references,
    )
    assert speaker_of_each_turn(response.segments, turns, label="speaker_id") == [
        t.speaker for t in turns
    ]
    assert wer(" ".join(t.text for t in turns), response.text) <= MAX_WER, response.text


def test_diarize_stream_segments_carry_speaker_ids(whisper_gateway, dialogue) -> None:
    path, turns = dialogue
    client = Mistral(api_key="x", server_url=f"{whisper_gateway.base_url}/mistral")
    events = list(
        client.audio.transcriptions.stream(
            model="m", file={"file_name": path.name, "content": path.read_bytes()}, diarize=True
        )
    )
    segments = [e.data for e in events if e.event == "transcription.segment"]
    labels = speaker_of_each_turn(segments, turns, label="speaker_id")
    assert labels == ["A", "B", "A", "B"]
    done = events[-1]
    assert done.event == "transcription.done"
    assert [s.speaker_id for s in done.data.segments] == [s.speaker_id for s in segments]
    # The engine's token deltas stream live; the labelled segments follow as they complete.
    deltas = [e.data.text for e in events if e.event == "transcription.text.delta"]
    assert len(deltas) > 3 * len(segments) and "".join(deltas) == done.data.text
