"""Silero VAD speech probabilities, one per 32 ms frame, from the `silero-vad` wheel's model.

Two detectors share one interface, `SpeechDetector`:

- `StockSileroDetector` is the package's own loop (what `get_speech_timestamps` does): one
  model call per 512-sample chunk, LSTM state carried in Python. Exact, ~100-200x real time.
- `BatchedSileroDetector` computes the same network from the same bundled weights
  (`silero_vad/data/silero_vad.jit`), but batched: the convolutional front end has no state, so
  it runs over thousands of frames per matrix multiply, and the LSTM runs the file as several
  parallel streams (contiguous blocks), each started a few seconds early so its state has
  converged by the time its block begins. Stream 0 starts at the file start like the stock loop,
  so a file shorter than a few stream warm-ups is computed exactly.

Nothing is downloaded: both read model files inside the installed wheel. Build one detector at
app start with `load_detector(settings.vad)` and share it; both are safe to call from threads.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.settings import VadSettings

FRAME_SAMPLES = 512
"""Samples per Silero frame at 16 kHz (32 ms); one probability per frame."""
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
_CONTEXT_SAMPLES = 64  # Silero v5+ prepends the previous chunk's last 64 samples to each chunk.
_FFT_SAMPLES = 256
_HOP_SAMPLES = 128
_LSTM_SIZE = 128


class SpeechDetector(Protocol):
    """Anything that turns 16 kHz mono audio into per-frame speech probabilities."""

    def frame_probabilities(
        self, samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ
    ) -> np.ndarray:
        """One speech probability (0-1) per 512-sample frame: `ceil(len(samples) / 512)` values.

        Frame `i` covers samples `[512 * i, 512 * i + 512)`; the last frame is zero-padded.
        Empty audio gives an empty array. Raises ValueError for any rate but 16 kHz.
        """
        ...


def _check_input(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    if sample_rate_hz != SAMPLE_RATE_HZ:
        raise ValueError(
            f"Silero VAD here runs at {SAMPLE_RATE_HZ} Hz only; got {sample_rate_hz} Hz "
            "(resample first)"
        )
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"VAD needs mono audio (1-D samples); got shape {samples.shape}")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _model_path(file_name: str) -> str:
    return str(resources.files("silero_vad.data").joinpath(file_name))


class StockSileroDetector:
    """The silero-vad package's per-chunk loop, exactly as `get_speech_timestamps` runs it."""

    def __init__(self, *, use_onnx: bool = True) -> None:
        from silero_vad import load_silero_vad

        self._model = load_silero_vad(onnx=use_onnx)
        # The model object carries LSTM state between chunks: one file at a time.
        self._lock = threading.Lock()

    def frame_probabilities(
        self, samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ
    ) -> np.ndarray:
        audio = torch.from_numpy(_check_input(samples, sample_rate_hz))
        probabilities = np.empty(-(-len(audio) // FRAME_SAMPLES), dtype=np.float32)
        with self._lock, torch.inference_mode():
            self._model.reset_states()
            for frame, start in enumerate(range(0, len(audio), FRAME_SAMPLES)):
                chunk = audio[start : start + FRAME_SAMPLES]
                if len(chunk) < FRAME_SAMPLES:
                    chunk = F.pad(chunk, (0, FRAME_SAMPLES - len(chunk)))
                probabilities[frame] = self._model(chunk, SAMPLE_RATE_HZ).item()
        return probabilities


class _SileroWeights:
    """The 16 kHz Silero network's weights, rearranged for batched matrix multiplies."""

    def __init__(self, jit_path: str) -> None:
        model = torch.jit.load(jit_path, map_location="cpu")._model
        params = {name: p.detach().clone() for name, p in model.named_parameters()}
        basis = model.stft.forward_basis_buffer.detach()[:, 0, :]  # [258, 256] windowed DFT

        # The STFT "convolution" is a Hann-windowed DFT (row 0 is the window itself), so an
        # FFT of the windowed signal gives the same magnitudes for a fraction of the work.
        self.window = basis[0].clone()

        def conv_as_matrix(weight: torch.Tensor) -> torch.Tensor:
            # [out, in, taps] -> [taps * in, out], matching a tap-major unfold of the input.
            return weight.permute(2, 1, 0).reshape(-1, weight.shape[0]).contiguous()

        encoder = "encoder.{}.reparam_conv.{}"
        self.conv1 = conv_as_matrix(params[encoder.format(0, "weight")])
        self.conv1_bias = params[encoder.format(0, "bias")]
        self.conv2 = conv_as_matrix(params[encoder.format(1, "weight")])
        self.conv2_bias = params[encoder.format(1, "bias")]
        # conv3 (stride 2, pad 1) sees 2 positions: its tap 0 only ever reads padding.
        self.conv3 = conv_as_matrix(params[encoder.format(2, "weight")][:, :, 1:])
        self.conv3_bias = params[encoder.format(2, "bias")]
        # conv4 (pad 1) sees 1 position: only its middle tap reads real data.
        self.conv4 = params[encoder.format(3, "weight")][:, :, 1].T.contiguous()
        self.conv4_bias = params[encoder.format(3, "bias")]

        self.lstm = torch.nn.LSTM(_LSTM_SIZE, _LSTM_SIZE, batch_first=True)
        with torch.no_grad():
            self.lstm.weight_ih_l0.copy_(params["decoder.rnn.weight_ih"])
            self.lstm.weight_hh_l0.copy_(params["decoder.rnn.weight_hh"])
            self.lstm.bias_ih_l0.copy_(params["decoder.rnn.bias_ih"])
            self.lstm.bias_hh_l0.copy_(params["decoder.rnn.bias_hh"])
        self.lstm.eval()
        self.lstm.requires_grad_(False)
        self.head = params["decoder.decoder.2.weight"][0, :, 0].clone()
        self.head_bias = params["decoder.decoder.2.bias"].clone()


class BatchedSileroDetector:
    """Silero VAD with many frames per matrix multiply and the file split into LSTM streams.

    Probabilities match the stock loop to float precision inside stream 0 (the first block)
    and to within a few hundredths after each later stream's warm-up.
    """

    def __init__(
        self,
        weights: _SileroWeights,
        *,
        streams: int = 16,
        warmup_frames: int = 256,
        block_frames: int = 1024,
    ) -> None:
        self._weights = weights
        self._streams = streams
        self._warmup_frames = warmup_frames
        self._block_frames = block_frames

    def frame_probabilities(
        self, samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ
    ) -> np.ndarray:
        audio = _check_input(samples, sample_rate_hz)
        frame_count = -(-len(audio) // FRAME_SAMPLES)
        if frame_count == 0:
            return np.zeros(0, dtype=np.float32)
        with torch.inference_mode():
            features = self._features(audio, frame_count)
            hidden = self._run_lstm(features)
            logits = torch.relu(hidden) @ self._weights.head + self._weights.head_bias
            return torch.sigmoid(logits).numpy()

    def _features(self, audio: np.ndarray, frame_count: int) -> torch.Tensor:
        """Encoder output [frames, 128]: stateless, so computed block by block (cache-sized)."""
        padded = torch.zeros(_CONTEXT_SAMPLES + frame_count * FRAME_SAMPLES)
        padded[_CONTEXT_SAMPLES : _CONTEXT_SAMPLES + len(audio)] = torch.from_numpy(audio)
        # Frame i sees 64 samples of context then its own 512: a 576-sample view per frame.
        frames = padded.unfold(0, _CONTEXT_SAMPLES + FRAME_SAMPLES, FRAME_SAMPLES)
        features = torch.empty(frame_count, _LSTM_SIZE)
        for first in range(0, frame_count, self._block_frames):
            block = frames[first : first + self._block_frames]
            features[first : first + len(block)] = self._encode(block)
        return features

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        w = self._weights
        n = frames.shape[0]
        # The model reflect-pads each 576-sample input by 64 on the right before its STFT.
        reflected = frames[:, FRAME_SAMPLES - 1 : FRAME_SAMPLES + _CONTEXT_SAMPLES - 1].flip(1)
        signal = torch.cat([frames, reflected], dim=1)  # [n, 640]
        windows = signal.unfold(1, _FFT_SAMPLES, _HOP_SAMPLES) * w.window  # [n, 4, 256]
        magnitude = torch.fft.rfft(windows).abs()  # [n, 4, 129]
        # conv1 (3 taps, pad 1) over the 4 STFT positions as one matrix multiply.
        x = F.pad(magnitude, (0, 0, 1, 1))  # [n, 6, 129]
        taps = x.as_strided((n, 4, 3 * 129), (6 * 129, 129, 1))
        x = torch.relu(torch.matmul(taps, w.conv1) + w.conv1_bias)  # [n, 4, 128]
        # conv2 (stride 2, pad 1): outputs at positions 0 and 2 read inputs -1..1 and 1..3.
        x = F.pad(x, (0, 0, 1, 0))  # [n, 5, 128]
        taps = x.as_strided((n, 2, 3 * 128), (5 * 128, 2 * 128, 1))
        x = torch.relu(torch.matmul(taps, w.conv2) + w.conv2_bias)  # [n, 2, 64]
        x = torch.relu(x.reshape(n, 128) @ w.conv3 + w.conv3_bias)  # [n, 64]
        return torch.relu(x @ w.conv4 + w.conv4_bias)  # [n, 128]

    def _run_lstm(self, features: torch.Tensor) -> torch.Tensor:
        """LSTM hidden state per frame, the file split into parallel streams of equal length."""
        frame_count = features.shape[0]
        warmup = self._warmup_frames
        # Warm-up frames are wasted work: keep them under ~25% of the total.
        streams = max(1, min(self._streams, frame_count // (4 * max(warmup, 1))))
        if streams == 1:
            hidden, _ = self._weights.lstm(features.unsqueeze(0))
            return hidden[0]
        block = -(-frame_count // streams)
        steps = block + warmup
        tail = torch.zeros(block * streams + warmup - frame_count, _LSTM_SIZE)
        extended = torch.cat([features, tail])
        # Stream s covers frames [s*block - warmup, (s+1)*block); stream 0 starts at frame 0
        # with zero state, exactly like the stock loop, and simply runs `warmup` frames long.
        starts = (torch.arange(streams) * block - warmup).clamp(min=0)
        index = starts.unsqueeze(1) + torch.arange(steps).unsqueeze(0)
        hidden, _ = self._weights.lstm(extended[index])  # [streams, steps, 128]
        kept = torch.cat([hidden[0, :block], hidden[1:, warmup:].reshape(-1, _LSTM_SIZE)])
        return kept[:frame_count]


def load_detector(settings: VadSettings) -> SpeechDetector:
    """Load the detector named by settings, once, at app start (no downloads)."""
    torch.set_num_threads(settings.threads)
    if settings.detector == "stock":
        return StockSileroDetector(use_onnx=settings.stock_backend == "onnx")
    weights = _SileroWeights(_model_path("silero_vad.jit"))
    return BatchedSileroDetector(
        weights,
        streams=settings.batch_streams,
        warmup_frames=round(settings.stream_warmup_s / FRAME_S),
    )
