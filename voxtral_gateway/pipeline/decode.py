"""Bytes of any supported container -> `Audio` (mono float32, 16 kHz).

libsndfile (wav, flac, ogg/vorbis/opus, mp3) is tried first because it is fast and reads
headers without decoding; PyAV (ffmpeg) takes everything else (m4a, mp4, webm, mpeg, ...).
Both paths decode block by block and stop the moment the duration cap is passed, so a small
file that claims or decodes to hours never fills memory. Synchronous: call it off the event loop.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import av
import numpy as np
import soundfile as sf
import soxr

from voxtral_gateway.errors import AudioLimitError, UnsupportedAudioError
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Audio
from voxtral_gateway.settings import LimitSettings

logger = logging.getLogger(__name__)

_BLOCK_FRAMES = 64 * 1024
_UNKNOWN_LENGTH = 2**62


def decode_audio(data: bytes, limits: LimitSettings) -> Audio:
    """Decode, downmix and resample `data`; raise a 4xx GatewayError for anything unusable.

    Empty or zero-length audio is an error (400): there is nothing to transcribe.
    """
    if not data:
        raise UnsupportedAudioError("The audio file is empty.", param="file")
    try:
        samples = _decode_with_soundfile(data, limits)
    except _NotForSoundfile:
        samples = _decode_with_pyav(data, limits)
    if samples.size == 0:
        raise UnsupportedAudioError("The audio file contains no samples.", param="file")
    return Audio(samples=samples)


class _NotForSoundfile(Exception):
    """libsndfile does not recognise the container; let PyAV try."""


def _check_shape(channels: int, sample_rate_hz: int, limits: LimitSettings) -> None:
    if channels < 1 or sample_rate_hz < 1:
        raise UnsupportedAudioError("The audio file declares no channels or no sample rate.")
    if channels > limits.max_channels:
        raise AudioLimitError(
            f"Audio has {channels} channels; at most {limits.max_channels} are accepted.",
            param="file",
        )
    if sample_rate_hz > limits.max_sample_rate_hz:
        raise AudioLimitError(
            f"Audio sample rate {sample_rate_hz} Hz exceeds {limits.max_sample_rate_hz} Hz.",
            param="file",
        )


def _duration_error(limits: LimitSettings) -> AudioLimitError:
    return AudioLimitError(
        f"Audio is longer than the {limits.max_duration_s:g} s limit.",
        param="file",
        code="audio_too_long",
    )


class _Collector:
    """Downmixes and resamples blocks as they arrive, enforcing the duration cap."""

    def __init__(
        self, sample_rate_hz: int, limits: LimitSettings, *, expected_frames: int | None = None
    ) -> None:
        self._limits = limits
        self._max_output = int(limits.max_duration_s * SAMPLE_RATE_HZ) + 1
        self._resampler = (
            None
            if sample_rate_hz == SAMPLE_RATE_HZ
            else soxr.ResampleStream(sample_rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32")
        )
        self._input_frames = 0
        self._max_input = int(limits.max_duration_s * sample_rate_hz) + sample_rate_hz
        self._blocks: list[np.ndarray] = []
        self._output_frames = 0
        # With a trusted length from the header, write into one buffer: peak memory ~1x the
        # samples instead of ~2x (blocks plus their concatenation). Overflow falls back to blocks.
        self._buffer: np.ndarray | None = None
        if expected_frames:
            capacity = expected_frames * SAMPLE_RATE_HZ // sample_rate_hz + SAMPLE_RATE_HZ
            self._buffer = np.empty(min(capacity, self._max_output), dtype=np.float32)

    def add(self, block: np.ndarray, *, last: bool = False) -> None:
        """`block` is (frames, channels) or (frames,) float32."""
        if not np.isfinite(block).all():
            # Float WAVs can carry NaN/inf; they would reach VAD and the engine as garbage.
            block = np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)
        mono = block
        if block.ndim == 2:
            mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1)
        self._input_frames += len(mono)
        if self._input_frames > self._max_input:
            raise _duration_error(self._limits)
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=last)
        self._output_frames += len(mono)
        if self._output_frames > self._max_output:
            raise _duration_error(self._limits)
        if not len(mono):
            return
        start = self._output_frames - len(mono)
        if self._buffer is not None and self._output_frames <= len(self._buffer):
            self._buffer[start : self._output_frames] = mono
            return
        if self._buffer is not None:  # the header under-stated the length
            self._blocks.append(self._buffer[:start])
            self._buffer = None
        self._blocks.append(mono)

    def finish(self) -> np.ndarray:
        if self._resampler is not None:
            self.add(np.zeros(0, dtype=np.float32), last=True)
        if self._buffer is not None:
            samples = self._buffer[: self._output_frames]
        elif self._blocks:
            samples = np.concatenate(self._blocks)
        else:
            return np.zeros(0, dtype=np.float32)
        # Clip once: some encoders overshoot [-1, 1] slightly after resampling.
        np.clip(samples, -1.0, 1.0, out=samples)
        return samples


class _ClampedBytesIO(io.BytesIO):
    """Some corrupt headers make libsndfile seek before byte 0. BytesIO raises, inside
    soundfile's C callback, where the error is only printed and the seek reads as position 0;
    seek to 0 ourselves instead, so libsndfile sees the same and nothing is printed."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return super().seek(offset, whence)
        except ValueError:
            return super().seek(0)


def _decode_with_soundfile(data: bytes, limits: LimitSettings) -> np.ndarray:
    try:
        sound = sf.SoundFile(_ClampedBytesIO(data))
    except sf.LibsndfileError as exc:
        raise _NotForSoundfile from exc
    except (RuntimeError, TypeError) as exc:
        raise _NotForSoundfile from exc
    with sound:
        _check_shape(sound.channels, sound.samplerate, limits)
        # The header's frame count lets us refuse a too-long file before decoding a sample.
        # libsndfile reports SF_COUNT_MAX when the header leaves the length unknown (a FLAC
        # written to a pipe): that is "unknown", not hours.
        known_frames = sound.frames if 0 < sound.frames < _UNKNOWN_LENGTH else None
        if known_frames and known_frames / sound.samplerate > limits.max_duration_s + 1:
            raise _duration_error(limits)
        collector = _Collector(sound.samplerate, limits, expected_frames=known_frames)
        try:
            for block in _soundfile_blocks(sound):
                collector.add(block)
        except sf.LibsndfileError as exc:
            # libsndfile gives up on some valid streams (a FLAC without a length seeks past its
            # end); ffmpeg decodes those, and reports truly broken files itself.
            raise _NotForSoundfile from exc
        return collector.finish()


def _soundfile_blocks(sound: sf.SoundFile) -> Iterator[np.ndarray]:
    while True:
        block = sound.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if len(block) == 0:
            return
        yield block


def _decode_with_pyav(data: bytes, limits: LimitSettings) -> np.ndarray:
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedAudioError(
            "Unsupported or invalid audio file: expected wav, flac, ogg, mp3, m4a, mp4, "
            "webm or mpeg.",
            param="file",
        ) from exc
    with container:
        streams = container.streams.audio
        if not streams:
            raise UnsupportedAudioError("The file contains no audio stream.", param="file")
        stream = streams[0]
        if stream.codec_context is None:  # e.g. a WAV header declaring 0 channels (fuzzing)
            raise UnsupportedAudioError("The audio stream cannot be decoded.", param="file")
        channels = stream.codec_context.channels or 0
        rate = stream.codec_context.sample_rate or 0
        _check_shape(channels, rate, limits)
        # PyAV resamples to mono float at 16 kHz itself; the collector only counts and caps.
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
        collector = _Collector(SAMPLE_RATE_HZ, limits)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    collector.add(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                collector.add(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as exc:
            raise UnsupportedAudioError(
                "The audio file is corrupt or truncated.", param="file"
            ) from exc
        return collector.finish()
