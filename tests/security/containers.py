"""Audio files of every supported container, and small files that decode to hours, made in memory.

The bombs are built without encoding hours of audio: one 20 ms Opus packet of silence is muxed
again and again with rising timestamps (as in GHSA-6pr9-rp53-2pmc, a small Opus file that
decodes to gigabytes), and FLAC silence compresses to a few bytes per frame.
"""

from __future__ import annotations

import fractions
import io
import subprocess
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from voxtral_gateway.pipeline.pcm16 import to_pcm16

CONTAINERS = ("wav", "flac", "ogg", "mp3", "m4a", "webm")
_OPUS_RATE_HZ = 48_000
_OPUS_FRAME = 960  # 20 ms at 48 kHz


def encode(samples: np.ndarray, sample_rate_hz: int, container: str) -> bytes:
    """Mono float32 `samples` as a complete file of `container`."""
    if container in ("wav", "flac", "ogg"):
        buffer = io.BytesIO()
        subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}[container]
        sf.write(buffer, samples, sample_rate_hz, format=container.upper(), subtype=subtype)
        return buffer.getvalue()
    codec, muxer = {
        "mp3": ("libmp3lame", "mp3"),
        "m4a": ("aac", "ipod"),
        "webm": ("libopus", "webm"),
    }[container]
    rate = _OPUS_RATE_HZ if codec == "libopus" else sample_rate_hz
    if rate != sample_rate_hz:
        import soxr

        samples = soxr.resample(samples, sample_rate_hz, rate).astype(np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame_size = stream.codec_context.frame_size or 1152
        pcm = to_pcm16(samples)
        for start in range(0, len(pcm), frame_size):
            chunk = pcm[start : start + frame_size]
            if len(chunk) < frame_size:
                chunk = np.pad(chunk, (0, frame_size - len(chunk)))
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def packet_bomb(duration_s: float, container: str) -> bytes:
    """A small file of `container` (webm, ogg, mp3, m4a) that decodes to `duration_s` of silence.

    One encoded packet of silence is muxed over and over with rising timestamps.
    """
    codec, muxer, rate, bit_rate = {
        "webm": ("libopus", "webm", _OPUS_RATE_HZ, 6000),
        "ogg": ("libopus", "ogg", _OPUS_RATE_HZ, 6000),
        "mp3": ("libmp3lame", "mp3", 16_000, 8000),
        "m4a": ("aac", "ipod", 16_000, 8000),
    }[container]
    encoder = av.CodecContext.create(codec, "w")
    encoder.sample_rate = rate
    encoder.layout = "mono"
    encoder.format = "s16p" if codec == "libmp3lame" else ("fltp" if codec == "aac" else "s16")
    encoder.bit_rate = bit_rate
    encoder.open()
    frame_size = encoder.frame_size or _OPUS_FRAME
    dtype = np.float32 if encoder.format.name == "fltp" else np.int16
    silence = av.AudioFrame.from_ndarray(
        np.zeros((1, frame_size), dtype=dtype), format=encoder.format.name, layout="mono"
    )
    silence.sample_rate = rate
    packets = []
    for index in range(64):
        silence.pts = index * frame_size
        packets += [bytes(p) for p in encoder.encode(silence)]
    packet = packets[-1]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout = "mono"
        stream.codec_context.extradata = encoder.extradata
        time_base = fractions.Fraction(1, rate)
        for index in range(int(duration_s * rate / frame_size)):
            muxed = av.Packet(packet)
            muxed.pts = muxed.dts = index * frame_size
            muxed.duration = frame_size
            muxed.time_base = time_base
            muxed.stream = stream
            output.mux(muxed)
    return buffer.getvalue()


def flac_bomb(path: Path, duration_s: float) -> bytes:
    """FLAC silence at 8 kHz (sox, no dither): a few bytes per frame."""
    command = ["sox", "-D", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path)]
    subprocess.run([*command, "trim", "0", str(duration_s)], check=True)
    return path.read_bytes()


def hide_flac_length(flac: bytes) -> bytes:
    """`flac` with STREAMINFO's total-samples field zeroed, as a streaming encoder writes it."""
    data = bytearray(flac)
    # STREAMINFO's body starts at byte 8; the low 36 bits of bytes 18..25 are the sample count.
    packed = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = packed.to_bytes(8, "big")
    return bytes(data)


def video_only_mp4() -> bytes:
    """One second of black MPEG-4 video with no audio stream."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()
