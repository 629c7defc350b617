"""The bench corpus: deterministic espeak-ng audio whose manifest matches the files."""

from __future__ import annotations

import hashlib
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import (
    SAMPLE_RATE_HZ,
    SENTENCES,
    add_noise,
    build_corpus,
    load_manifest,
    resample,
)


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, long_minutes=[1], short_kinds=["clean", "noisy"], seed=0)
    return out


def test_same_arguments_give_the_same_bytes(small_corpus: Path, tmp_path: Path) -> None:
    build_corpus(tmp_path, long_minutes=[1], short_kinds=["clean", "noisy"], seed=0)
    assert _digest(tmp_path) == _digest(small_corpus)


def test_another_seed_changes_the_noise(small_corpus: Path, tmp_path: Path) -> None:
    build_corpus(tmp_path, long_minutes=[], short_kinds=["noisy"], seed=1)
    noisy = next(p for p in (tmp_path / "noisy").iterdir())
    assert noisy.read_bytes() != (small_corpus / "noisy" / noisy.name).read_bytes()


def test_manifest_matches_the_wav_files(small_corpus: Path) -> None:
    items = load_manifest(small_corpus)
    assert {item.kind for item in items} == {"clean", "noisy", "long"}
    assert len([i for i in items if i.kind == "clean"]) == len(SENTENCES)
    for item in items:
        with wave.open(str(small_corpus / item.path)) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (
                SAMPLE_RATE_HZ,
                1,
                2,
            )
            assert wav.getnframes() / SAMPLE_RATE_HZ == pytest.approx(item.duration_s, abs=1e-5)
        assert item.text


def test_long_file_has_its_exact_length_and_many_sentences(small_corpus: Path) -> None:
    (long_item,) = [i for i in load_manifest(small_corpus) if i.kind == "long"]
    assert long_item.duration_s == 60.0
    assert long_item.snr_db == 25.0
    sentences_in_text = sum(long_item.text.count(s) for s in SENTENCES)
    assert sentences_in_text >= 15  # ~2.5 s per sentence plus pauses
    assert set(long_item.voices) == {"en-us", "en-gb", "en+f3"}


def test_clean_clip_is_speech_not_silence(small_corpus: Path) -> None:
    item = next(i for i in load_manifest(small_corpus) if i.kind == "clean")
    with wave.open(str(small_corpus / item.path)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2") / 32768.0
    assert np.sqrt(np.mean(pcm**2)) > 0.03  # speech normalised to -20 dBFS over the clip
    assert np.abs(pcm[: SAMPLE_RATE_HZ // 10]).max() == 0.0  # clean clips lead in with silence


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0])
def test_add_noise_hits_the_requested_snr(snr_db: float) -> None:
    rng = np.random.default_rng(0)
    speech = np.full(SAMPLE_RATE_HZ * 5, 0.1, dtype=np.float32)  # RMS -20 dBFS
    noise = add_noise(speech, snr_db, rng) - speech
    measured = 20 * np.log10(0.1 / np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    assert measured == pytest.approx(snr_db, abs=0.1)


def test_resample_keeps_a_tone_at_its_frequency() -> None:
    t = np.arange(22_050) / 22_050
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, 22_050, SAMPLE_RATE_HZ)
    assert len(out) == SAMPLE_RATE_HZ
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * SAMPLE_RATE_HZ / len(out)
    assert peak_hz == pytest.approx(440, abs=1)


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        build_corpus(tmp_path, long_minutes=[], short_kinds=["music"])


def test_manifest_is_plain_json_with_relative_paths(small_corpus: Path) -> None:
    manifest = json.loads((small_corpus / "manifest.json").read_text())
    assert manifest["sample_rate_hz"] == SAMPLE_RATE_HZ
    assert all(not Path(item["path"]).is_absolute() for item in manifest["items"])
