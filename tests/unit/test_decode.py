"""Real containers, written by libsndfile and ffmpeg (PyAV), decoded to mono 16 kHz."""

from __future__ import annotations

import io
import tempfile
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf

from tests.whole_file import decode_whole
from voxtral_gateway.errors import AudioLimitError, UnsupportedAudioError
from voxtral_gateway.pipeline import decode
from voxtral_gateway.pipeline.decode import decode_blocks
from voxtral_gateway.settings import LimitSettings

DURATION_S = 2.0


def _tone(rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(DURATION_S * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def _soundfile_bytes(fmt: str, subtype: str | None, rate: int = 44_100, channels: int = 2) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, _tone(rate, channels), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _pyav_bytes(container: str, codec: str, rate: int = 48_000) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        samples = _tone(rate, 2).T.astype(np.float32)
        frame_size = 1024
        for start in range(0, samples.shape[1], frame_size):
            chunk = np.ascontiguousarray(samples[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


CONTAINERS = {
    "wav-44k-stereo": lambda: _soundfile_bytes("WAV", "PCM_16"),
    "wav-8k-mono": lambda: _soundfile_bytes("WAV", "PCM_16", rate=8_000, channels=1),
    "flac": lambda: _soundfile_bytes("FLAC", "PCM_16"),
    "ogg-vorbis": lambda: _soundfile_bytes("OGG", "VORBIS"),
    "mp3": lambda: _soundfile_bytes("MP3", "MPEG_LAYER_III"),
    "m4a-aac": lambda: _pyav_bytes("ipod", "aac"),
    "webm-opus": lambda: _pyav_bytes("webm", "libopus"),
}


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_every_container_decodes_to_mono_16k(name: str) -> None:
    audio = decode_whole(CONTAINERS[name](), LimitSettings())
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    # Codecs add priming/padding; the length stays within 100 ms of the source.
    assert audio.duration_s == pytest.approx(DURATION_S, abs=0.1)
    # A 440 Hz tone survives: its spectral peak is where it was.
    window = audio.samples[4000:20000]
    peak_hz = np.argmax(np.abs(np.fft.rfft(window))) * 16_000 / len(window)
    assert peak_hz == pytest.approx(440, abs=5)


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_truncated_files_are_400_not_500(name: str) -> None:
    data = CONTAINERS[name]()
    for cut in (12, 64, len(data) // 3):
        try:
            audio = decode_whole(data[:cut], LimitSettings())
        except UnsupportedAudioError as exc:
            assert exc.status_code == 400
        else:
            # A container cut after its header may still yield the frames before the cut.
            assert audio.duration_s < DURATION_S


def test_garbage_and_empty_bytes_are_unsupported() -> None:
    for data in (b"", b"not audio at all" * 100, bytes(range(256)) * 50):
        with pytest.raises(UnsupportedAudioError) as caught:
            decode_whole(data, LimitSettings())
        assert caught.value.status_code == 400


def test_duration_cap_refuses_from_header_before_decoding() -> None:
    with pytest.raises(AudioLimitError) as caught:
        decode_whole(CONTAINERS["flac"](), LimitSettings(max_duration_s=1.0))
    assert caught.value.status_code == 413


def test_duration_cap_stops_pyav_decoding() -> None:
    with pytest.raises(AudioLimitError):
        decode_whole(CONTAINERS["m4a-aac"](), LimitSettings(max_duration_s=1.0))


def test_channel_and_rate_caps() -> None:
    with pytest.raises(AudioLimitError, match="channels"):
        decode_whole(_soundfile_bytes("WAV", "PCM_16", channels=4), LimitSettings(max_channels=2))
    with pytest.raises(AudioLimitError, match="sample rate"):
        decode_whole(CONTAINERS["wav-44k-stereo"](), LimitSettings(max_sample_rate_hz=16_000))


def _spooled(data: bytes, max_size: int) -> tempfile.SpooledTemporaryFile:
    """An upload as starlette hands it over: a spooled file (mode "w+b"), on disk past max_size."""
    file = tempfile.SpooledTemporaryFile(max_size=max_size)  # noqa: SIM115 - closed by the test
    file.write(data)
    file.seek(0)
    return file


@pytest.mark.parametrize("holder", ["bytes", "spooled-in-memory", "spooled-on-disk"])
def test_plain_pcm16_wav_decodes_exactly_as_libsndfile_does(monkeypatch, holder) -> None:
    """The stdlib fast path for PCM16 mono 16 kHz WAV gives libsndfile's samples, bit for bit,
    block by block; libsndfile itself is not used, whether the WAV is bytes or an upload."""
    rng = np.random.default_rng(1)
    pcm = rng.integers(-32768, 32767, size=200_000, dtype=np.int16)
    buffer = io.BytesIO()
    sf.write(buffer, pcm, 16_000, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    expected, _ = sf.read(io.BytesIO(data), dtype="float32")
    monkeypatch.setattr(decode, "_decode_with_soundfile", None)  # would raise TypeError if called
    sources = {
        "bytes": io.BytesIO(data),
        "spooled-in-memory": _spooled(data, max_size=len(data) + 1),
        "spooled-on-disk": _spooled(data, max_size=1024),
    }
    with sources[holder] as source:
        blocks = list(decode_blocks(source, LimitSettings()))
    assert len(blocks) > 1  # streamed, not read whole
    np.testing.assert_array_equal(np.concatenate(blocks), expected)
