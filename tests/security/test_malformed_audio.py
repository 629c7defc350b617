"""Malformed, truncated and corrupted files of every container: a 4xx or valid audio, never a 500.

`decode_blocks` runs in the route's worker thread; anything it raises that is not a
GatewayError becomes a 500, so every case here asserts exactly that contract.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures.audio import AudioFactory
from tests.security.containers import CONTAINERS, encode, hide_flac_length, video_only_mp4
from tests.whole_file import decode_whole
from voxtral_gateway.errors import GatewayError
from voxtral_gateway.pipeline.records import Audio
from voxtral_gateway.settings import LimitSettings

LIMITS = LimitSettings(max_duration_s=60)
TRUNCATIONS = (1, 4, 12, 44, 100, 512, 0.25, 0.5, 0.9)


@pytest.fixture(scope="module")
def valid_files(audio_factory: AudioFactory) -> dict[str, bytes]:
    samples, rate = sf.read(str(audio_factory.sentence(0).path), dtype="float32")
    return {container: encode(samples, rate, container) for container in CONTAINERS}


def _decode_is_4xx_or_audio(data: bytes) -> Audio | GatewayError:
    try:
        audio = decode_whole(data, LIMITS)
    except GatewayError as exc:
        assert 400 <= exc.status_code < 500, exc
        return exc
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert np.isfinite(audio.samples).all()
    return audio


@pytest.mark.parametrize("container", CONTAINERS)
def test_valid_file_of_each_container_decodes(
    valid_files: dict[str, bytes], container: str
) -> None:
    # The control for the cases below: the untouched file is fine.
    assert isinstance(_decode_is_4xx_or_audio(valid_files[container]), Audio)


@pytest.mark.parametrize("cut", TRUNCATIONS)
@pytest.mark.parametrize("container", CONTAINERS)
def test_truncated_file_is_4xx_or_shorter_audio(
    valid_files: dict[str, bytes], container: str, cut: float
) -> None:
    data = valid_files[container]
    keep = int(len(data) * cut) if isinstance(cut, float) else cut
    result = _decode_is_4xx_or_audio(data[:keep])
    if keep <= 44:
        # Nothing but (part of) a header: no container can yield audio from this.
        assert isinstance(result, GatewayError)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction", [0.001, 0.05])
@pytest.mark.parametrize("container", CONTAINERS)
def test_corrupted_bytes_are_4xx_or_audio(
    valid_files: dict[str, bytes], container: str, fraction: float, seed: int
) -> None:
    data = bytearray(valid_files[container])
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, len(data), max(1, int(len(data) * fraction)))
    for position in positions:
        data[position] ^= int(rng.integers(1, 256))
    _decode_is_4xx_or_audio(bytes(data))


@pytest.mark.parametrize(("head", "body"), itertools.permutations(CONTAINERS, 2))
def test_header_of_one_container_on_the_body_of_another(
    valid_files: dict[str, bytes], head: str, body: str
) -> None:
    _decode_is_4xx_or_audio(valid_files[head][:64] + valid_files[body][64:])


def _wav(
    *,
    channels: int = 1,
    rate: int = 16_000,
    bits: int = 16,
    data_size: int | None = None,
    fmt_size: int = 16,
    frames: int = 1600,
) -> bytes:
    block_align = max(1, channels * bits // 8) & 0xFFFF
    payload = b"\0" * (frames * 2)
    fmt = struct.pack(
        "<HHIIHH", 1, channels, rate, (rate * block_align) & 0xFFFFFFFF, block_align, bits
    )
    chunks = b"fmt " + struct.pack("<I", fmt_size) + fmt
    chunks += b"data" + struct.pack("<I", len(payload) if data_size is None else data_size)
    chunks += payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


HOSTILE_BYTES = [
    ("empty", b"", 400),
    ("text", b"hello, this is not audio\n" * 40, 400),
    ("json", b'{"file": "a.wav"}', 400),
    ("html", b"<!doctype html><html><body>audio</body></html>" * 10, 400),
    ("png", b"\x89PNG\r\n\x1a\n" + b"\0" * 200, 400),
    ("zip", b"PK\x03\x04" + b"\0" * 200, 400),
    ("random", np.random.default_rng(7).bytes(50_000), 400),
    ("video-only-mp4", video_only_mp4(), 400),
    ("wav-zero-channels", _wav(channels=0), 400),
    ("wav-65535-channels", _wav(channels=65535), None),
    ("wav-zero-rate", _wav(rate=0), 400),
    ("wav-4ghz-rate", _wav(rate=4_000_000_000), None),
    ("wav-zero-bits", _wav(bits=0), 400),
    ("wav-data-size-4gb", _wav(data_size=0xFFFFFFFF), None),
    ("wav-fmt-size-huge", _wav(fmt_size=0x7FFFFFFF), 400),
]


@pytest.mark.parametrize(
    ("name", "data", "status"), HOSTILE_BYTES, ids=[case[0] for case in HOSTILE_BYTES]
)
def test_hostile_bytes_are_refused_with_a_4xx(name: str, data: bytes, status: int | None) -> None:
    result = _decode_is_4xx_or_audio(data)
    if status is not None:
        assert isinstance(result, GatewayError) and result.status_code == status, name


def test_flac_without_a_sample_count_in_its_header_still_decodes(
    valid_files: dict[str, bytes],
) -> None:
    # Encoders writing to a pipe cannot seek back to fill STREAMINFO's total-samples field.
    audio = decode_whole(hide_flac_length(valid_files["flac"]), LIMITS)
    assert audio.duration_s > 1.0
