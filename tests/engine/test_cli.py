"""`voxtral-gateway transcribe` against a live gateway + Whisper tiny.en."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest
import srt

pytestmark = pytest.mark.engine

CLI = str(Path(sys.executable).parent / "voxtral-gateway")


def _words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalpha() or c == " ").split())


def test_transcribe_streams_text_with_progress(whisper_gateway, speech_60s) -> None:
    result = subprocess.run(
        [CLI, "transcribe", str(speech_60s.path), "--server", whisper_gateway.base_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert jiwer.wer(_words(speech_60s.text), _words(result.stdout)) < 0.15
    assert "segments" in result.stderr  # the progress bar went to stderr, not into the text
    assert "text=" in result.stderr  # with the last words, live as the token deltas arrive


def test_transcribe_writes_srt_file(whisper_gateway, speech_5s, tmp_path: Path) -> None:
    out = tmp_path / "out.srt"
    result = subprocess.run(
        [
            CLI,
            "transcribe",
            str(speech_5s.path),
            "--server",
            whisper_gateway.base_url,
            "--format",
            "srt",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    cues = list(srt.parse(out.read_text()))
    assert (
        cues and jiwer.wer(_words(speech_5s.text), _words(" ".join(c.content for c in cues))) < 0.3
    )


def test_transcribe_reports_missing_file(whisper_gateway, tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "transcribe", str(tmp_path / "nope.wav"), "--server", whisper_gateway.base_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no such file" in result.stderr


def test_transcribe_mistral_dialect_prints_mistrals_body(whisper_gateway, speech_5s) -> None:
    result = subprocess.run(
        [
            CLI,
            "transcribe",
            str(speech_5s.path),
            "--server",
            whisper_gateway.base_url,
            "--dialect",
            "mistral",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["usage"]["completion_tokens"] > 0
    assert body["segments"] and body["segments"][0]["type"] == "transcription_segment"
    assert jiwer.wer(_words(speech_5s.text), _words(body["text"])) < 0.15


def test_transcribe_words_prints_timed_words(whisper_gateway, speech_5s) -> None:
    result = subprocess.run(
        [CLI, "transcribe", str(speech_5s.path), "--server", whisper_gateway.base_url, "--words"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert " ".join(w["word"] for w in body["words"]) == body["text"]
    assert body["words"][0]["start"] < body["words"][-1]["end"] <= speech_5s.duration_s
