"""Whisper's log-Mel input features in numpy (no torch, no librosa on the request path).

Same recipe as openai/whisper `audio.log_mel_spectrogram`: periodic Hann window of 400
samples, hop 160 (100 frames/s), reflect-padded centre STFT with the last frame dropped,
Slaney-normalised Mel filters, log10 clamped to 8 decades below the peak, scaled to ~[-1, 1].
"""

from __future__ import annotations

import functools

import numpy as np

from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ

N_FFT = 400
HOP_SAMPLES = 160
WINDOW_S = 30.0
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE_HZ)
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_SAMPLES  # 3000


def log_mel_window(samples: np.ndarray, n_mels: int) -> np.ndarray:
    """`[1, n_mels, 3000]` float32 features of up to 30 s of 16 kHz audio, zero-padded."""
    audio = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    clip = samples[:WINDOW_SAMPLES].astype(np.float32, copy=False)
    audio[: len(clip)] = clip
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_SAMPLES]
    spectrum = np.fft.rfft(frames[:WINDOW_FRAMES] * _hann(), axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = _mel_filters(n_mels) @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0)[np.newaxis].astype(np.float32)


@functools.cache
def _hann() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear below 1 kHz, logarithmic above (librosa's default, htk=False).
    mel = hz / (200.0 / 3)
    log_part = hz >= 1000.0
    mel[log_part] = 15.0 + np.log(hz[log_part] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = mel * (200.0 / 3)
    log_part = mel >= 15.0
    hz[log_part] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_part] - 15.0))
    return hz


@functools.cache
def _mel_filters(n_mels: int) -> np.ndarray:
    """`[n_mels, 201]` triangular filters, area-normalised (librosa `norm="slaney"`)."""
    edges = np.array([0.0, SAMPLE_RATE_HZ / 2])
    mel_edges = _hz_to_mel(edges)
    hz = _mel_to_hz(np.linspace(mel_edges[0], mel_edges[1], n_mels + 2))
    fft_hz = np.linspace(0, SAMPLE_RATE_HZ / 2, N_FFT // 2 + 1)
    widths = np.diff(hz)
    ramps = hz[:, np.newaxis] - fft_hz[np.newaxis, :]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (hz[2:] - hz[:-2]))[:, np.newaxis]
    return filters.astype(np.float32)
