"""Speakers through the OpenAI SDK: Whisper tiny.en on vLLM plus the real GE2E encoder.

The audio is espeak-ng voices taking turns (bench/dialogue.py): synthetic voices are easier to
tell apart than real people, so these tests prove the wiring and the attribution, not the
accuracy on real meetings (bench/results/ has the DER figures).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from bench.dialogue import Turn, compose_dialogue
from tests.fixtures.dialogue import (
    reference_clip,
    speaker_of_each_turn,
    wav_bytes,
    write_dialogue,
)

pytestmark = pytest.mark.engine

SIX_TURNS = [
    ("alice", "Good morning, how was the trip?"),
    ("bob", "It was long, but the train was on time."),
    ("alice", "Did you bring the report?"),
    ("bob", "Yes, it is in my bag."),
    ("alice", "Great, thank you."),
    ("bob", "You are welcome."),
]

KEYWORDS = ["trip", "train", "report", "bag", "thank", "welcome"]  # one per turn, in order


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[Turn, ...]]:
    return write_dialogue(tmp_path_factory.mktemp("speakers"), SIX_TURNS, seed=1)


@pytest.fixture
def client(whisper_gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{whisper_gateway.base_url}/v1", api_key="x", max_retries=0)


def test_diarized_json_attributes_every_turn_of_a_dialogue(client, dialogue) -> None:
    path, turns = dialogue
    result = client.audio.transcriptions.create(
        model="w", file=path.open("rb"), response_format="diarized_json"
    )
    labels = speaker_of_each_turn(result.segments, turns)
    assert labels[0::2] == [labels[0]] * 3 and labels[1::2] == [labels[1]] * 3
    assert labels[0] != labels[1]
    assert set(labels) == {"A", "B"}
    # The one window's text is cut at the turns: each turn's segment has its own words.
    for turn, keyword in zip(turns, KEYWORDS, strict=True):
        text = " ".join(
            s.text.lower()
            for s in result.segments
            if min(s.end, turn.end_s) > max(s.start, turn.start_s)
        )
        assert keyword in text and not any(k in text for k in KEYWORDS if k != keyword), text


def test_speakers_make_no_more_engine_calls_than_plain(whisper_gateway, dialogue) -> None:
    """Speakers keep VAD's packed windows: the six turns are one engine call either way (one
    call per speech region would be six)."""
    path, _ = dialogue
    base_url = whisper_gateway.base_url

    def engine_windows() -> float:
        metrics = httpx.get(f"{base_url}/metrics", timeout=30).text
        return float(re.search(r"^voxtral_engine_windows_total (\S+)$", metrics, re.M).group(1))

    calls = {}
    for response_format in ("verbose_json", "diarized_json"):
        before = engine_windows()
        response = httpx.post(
            f"{base_url}/v1/audio/transcriptions",
            files={"file": ("d.wav", path.read_bytes(), "audio/wav")},
            data={"model": "w", "response_format": response_format},
            timeout=300,
        )
        assert response.status_code == 200, response.text
        calls[response_format] = engine_windows() - before
    assert calls == {"verbose_json": 1, "diarized_json": 1}


def test_known_speaker_references_name_the_right_speaker(client, dialogue) -> None:
    path, turns = dialogue
    references = [reference_clip(who) for who in ("bob", "alice")]
    result = client.audio.transcriptions.create(
        model="w",
        file=path.open("rb"),
        response_format="diarized_json",
        known_speaker_names=["bob", "alice"],
        known_speaker_references=references,
    )
    assert speaker_of_each_turn(result.segments, turns) == [t.speaker for t in turns]


def test_one_voice_gives_one_speaker_in_srt(client, tmp_path) -> None:
    audio, _ = compose_dialogue([("bob", t) for _, t in SIX_TURNS[:3]], seed=2)
    path = tmp_path / "one.wav"
    path.write_bytes(wav_bytes(audio))
    body = client.audio.transcriptions.create(
        model="w", file=path.open("rb"), response_format="srt", extra_body={"speakers": "true"}
    )
    cues = [line for line in body.splitlines() if ": " in line]
    assert len(cues) == 3 and all(line.startswith("A: ") for line in cues)


def test_silence_gives_no_speakers(client, tmp_path) -> None:
    path = tmp_path / "silence.wav"
    path.write_bytes(wav_bytes(np.zeros(3 * 16_000, np.float32)))
    result = client.audio.transcriptions.create(
        model="w", file=path.open("rb"), response_format="diarized_json"
    )
    assert result.segments == [] and result.text == ""


def test_stream_sends_segments_with_speakers(client, dialogue) -> None:
    path, turns = dialogue
    stream = client.audio.transcriptions.create(
        model="w", file=path.open("rb"), response_format="diarized_json", stream=True
    )
    events = list(stream)
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert events[-1].type == "transcript.text.done"
    labels = speaker_of_each_turn(segments, turns)
    assert labels[0::2] == [labels[0]] * 3 and labels[1::2] == [labels[1]] * 3
    assert labels[0] != labels[1]
    # The engine's token deltas stream live; a window's text is followed by its segments, cut
    # at speaker turns, whose texts join to what its deltas said.
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert "".join(deltas) == events[-1].text
    said, cut, groups = "", [], []
    for event in [*events, None]:
        is_segment = event is not None and event.type == "transcript.text.segment"
        if is_segment:
            cut.append(event.text)
        elif cut:
            groups.append((said.split(), " ".join(cut).split()))
            said, cut = "", []
        if event is not None and event.type == "transcript.text.delta":
            said += event.delta
    assert groups and all(words == segment_words for words, segment_words in groups)
    assert len(deltas) > 3 * len(groups)  # tokens, not one delta per window


def test_cli_prints_each_turn_with_its_speaker(whisper_gateway, dialogue) -> None:
    path, turns = dialogue
    cli = str(Path(sys.executable).parent / "voxtral-gateway")
    result = subprocess.run(
        [cli, "transcribe", str(path), "--server", whisper_gateway.base_url, "--format", "text"]
        + ["--speakers"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    speakers = [line.split(": ", 1)[0] for line in result.stdout.splitlines()]
    assert speakers == ["A", "B"] * 3
    assert "A: " in result.stderr  # shown live as segments completed
