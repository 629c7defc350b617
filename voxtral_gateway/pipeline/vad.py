"""Silero VAD speech probabilities, one per 32 ms frame, from the `silero-vad` wheel's model.

Two detectors share one interface, `SpeechDetector`:

- `StockSileroDetector` is the package's own loop (what `get_speech_timestamps` does): one
  model call per 512-sample chunk, LSTM state carried in Python. Exact, ~100-200x real time.
- `BatchedSileroDetector` computes the same network from the same bundled weights
  (`silero_vad/data/silero_vad.jit`), but batched: the convolutional front end has no state, so
  it runs over a thousand frames per matrix multiply (FFT for the STFT, one GEMM per conv tap),
  and the LSTM runs a long file as a few parallel streams (contiguous blocks), each started a
  minute early so its state has converged by the time its block begins. Stream 0 starts at the
  file start like the stock loop, so files under ~3 minutes (by default) are computed exactly.

Nothing is downloaded: both read model files inside the installed wheel. Build one detector at
app start with `load_detector(settings.vad)` and share it; both are safe to call from threads
(the stock one serialises calls, the batched one keeps no state between calls).
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

    def stream(self) -> SileroStream:
        """A new stream for audio that arrives a piece at a time (a long file's chunks, a
        realtime session): its own LSTM state over this detector's shared weights."""
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
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    # torch warns on read-only arrays (e.g. from np.frombuffer); we never write, but copy once.
    return samples if samples.flags.writeable else samples.copy()


def _model_path(file_name: str) -> str:
    return str(resources.files("silero_vad.data").joinpath(file_name))


class StockSileroDetector:
    """The silero-vad package's per-chunk loop, exactly as `get_speech_timestamps` runs it."""

    def __init__(self, *, use_onnx: bool = True) -> None:
        from silero_vad import load_silero_vad

        self._model = load_silero_vad(onnx=use_onnx)
        # The model object carries LSTM state between chunks: one file at a time.
        self._lock = threading.Lock()
        self._streaming: BatchedSileroDetector | None = None

    def stream(self) -> SileroStream:
        """This model object holds one file's state at a time, so streams run the same
        network from the same wheel through the batched code, built on first use."""
        with self._lock:
            if self._streaming is None:
                weights = _SileroWeights(_model_path("silero_vad.jit"))
                self._streaming = BatchedSileroDetector(weights)
        return self._streaming.stream()

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

        def taps(name: str) -> list[torch.Tensor]:
            # Conv1d weight [out, in, taps] -> one [in, out] matrix per tap.
            weight = params[f"encoder.{name}.reparam_conv.weight"]
            return [weight[:, :, tap].T.contiguous() for tap in range(weight.shape[2])]

        def bias(name: str) -> torch.Tensor:
            return params[f"encoder.{name}.reparam_conv.bias"]

        self.conv1, self.conv1_bias = taps("0"), bias("0")
        self.conv2, self.conv2_bias = taps("1"), bias("1")
        self.conv3, self.conv3_bias = taps("2"), bias("2")
        self.conv4, self.conv4_bias = taps("3"), bias("3")

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


def _verify(detector: BatchedSileroDetector, jit_path: str) -> None:
    """Refuse to start if our re-arrangement of the network disagrees with the package's model.

    Guards against a silero-vad release whose TorchScript internals we misread.
    """
    model = torch.jit.load(jit_path, map_location="cpu")
    t = torch.arange(64 * FRAME_SAMPLES) / SAMPLE_RATE_HZ  # ~2 s, whole frames
    # A rising tone with bursts: probabilities that move, not a flat zero.
    probe = 0.3 * torch.sin(2 * torch.pi * (200 + 300 * t) * t) * (torch.sin(5 * t) > 0)
    probe += 0.01 * torch.sin(2 * torch.pi * 3000 * t)
    expected = []
    with torch.inference_mode():
        model.reset_states()
        for start in range(0, len(probe), FRAME_SAMPLES):
            expected.append(model(probe[start : start + FRAME_SAMPLES], SAMPLE_RATE_HZ).item())
    got = detector.frame_probabilities(probe.numpy().astype(np.float32))
    if not np.allclose(got, expected, atol=1e-4):
        raise RuntimeError(
            "Batched Silero VAD disagrees with the silero-vad package's model "
            f"(max difference {np.abs(got - np.array(expected)).max():.3g}); "
            "use VOXTRAL_VAD__DETECTOR=stock"
        )


class BatchedSileroDetector:
    """Silero VAD with many frames per matrix multiply and the file split into LSTM streams.

    Probabilities match the stock loop to float precision inside stream 0 (the first block)
    and to within a few hundredths after each later stream's warm-up.
    """

    def __init__(
        self,
        weights: _SileroWeights,
        *,
        streams: int = 8,
        warmup_frames: int = 2048,
        block_frames: int = 512,
    ) -> None:
        self._weights = weights
        self._streams = streams
        self._warmup_frames = warmup_frames
        self._block_frames = block_frames

    def frame_probabilities(
        self, samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ
    ) -> np.ndarray:
        audio = torch.from_numpy(_check_input(samples, sample_rate_hz))
        frame_count = -(-len(audio) // FRAME_SAMPLES)
        if frame_count == 0:
            return np.zeros(0, dtype=np.float32)
        streams, block = self._streams_for(frame_count)
        with torch.inference_mode():
            # streams * block >= frame_count: the last stream's overrun reads zeros.
            features = self._features(audio, streams * block)
            logits = self._run_lstm(features, streams, block)
            return torch.sigmoid(logits[:frame_count]).numpy()

    def _features(self, audio: torch.Tensor, capacity: int) -> torch.Tensor:
        """Encoder output [capacity, 128], zero past the audio's frames.

        The encoder has no state, so it runs block by block: each block's intermediates stay
        in cache, and each matrix multiply still covers hundreds of frames.
        """
        frame_count = -(-len(audio) // FRAME_SAMPLES)
        features = torch.empty(capacity, _LSTM_SIZE)
        features[frame_count:] = 0.0
        for first in range(0, frame_count, self._block_frames):
            count = min(self._block_frames, frame_count - first)
            block = _block_samples(audio, first, count)
            self._encode(block, count, features[first : first + count])
        return features

    def _encode(self, samples: torch.Tensor, n: int, out: torch.Tensor) -> None:
        """Write the encoder output [n, 128] for n frames, given their 64 + 512 * n samples.

        Intermediates are position-major ([position, frame, channel]) so that every conv tap
        is one plain matrix multiply over all n frames, with no copies to line inputs up.
        """
        w = self._weights
        # Frame i's input is 576 samples (context + its own 512), reflect-padded by 64 on the
        # right, cut into 4 Hann windows of 256 at hop 128. Windows 0-2 lie inside the input;
        # window 3 runs into the reflection.
        windows = torch.empty(4, n, _FFT_SAMPLES)
        inside = samples.as_strided(
            (3, n, _FFT_SAMPLES), (_HOP_SAMPLES, FRAME_SAMPLES, 1), samples.storage_offset()
        )
        torch.mul(inside, w.window, out=windows[:3])
        frames = samples.unfold(0, _CONTEXT_SAMPLES + FRAME_SAMPLES, FRAME_SAMPLES)
        last_start = 3 * _HOP_SAMPLES
        real = _CONTEXT_SAMPLES + FRAME_SAMPLES - last_start  # 192 real samples, 64 reflected
        torch.mul(frames[:, last_start:], w.window[:real], out=windows[3, :, :real])
        reflected = frames[:, FRAME_SAMPLES - 1 : FRAME_SAMPLES + _CONTEXT_SAMPLES - 1].flip(1)
        torch.mul(reflected, w.window[real:], out=windows[3, :, real:])

        squares = torch.view_as_real(torch.fft.rfft(windows)).square_()  # [4, n, 129, 2]
        # Magnitudes go into positions 1-4 of a buffer whose positions 0 and 5 are conv1's
        # zero padding.
        stft = torch.empty(6, n, _FFT_SAMPLES // 2 + 1)
        stft[0] = 0.0
        stft[5] = 0.0
        torch.add(squares[..., 0], squares[..., 1], out=stft[1:5]).sqrt_()

        def rows(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, x.shape[-1])  # [positions, n, c] -> [positions * n, c], a view

        # conv1: 3 taps, pad 1, over 4 positions.
        x = torch.addmm(w.conv1_bias, rows(stft[0:4]), w.conv1[0])
        x.addmm_(rows(stft[1:5]), w.conv1[1]).addmm_(rows(stft[2:6]), w.conv1[2])
        x = torch.relu_(x).view(4, n, -1)
        # conv2: stride 2, pad 1. Output 0 reads positions -1..1 (-1 is padding), output 1
        # reads positions 1..3.
        y0 = torch.addmm(w.conv2_bias, x[0], w.conv2[1]).addmm_(x[1], w.conv2[2])
        y1 = torch.addmm(w.conv2_bias, x[1], w.conv2[0]).addmm_(x[2], w.conv2[1])
        y1.addmm_(x[3], w.conv2[2])
        y0, y1 = torch.relu_(y0), torch.relu_(y1)
        # conv3: stride 2, pad 1, one output reading positions -1..1 (-1 is padding).
        z = torch.addmm(w.conv3_bias, y0, w.conv3[1]).addmm_(y1, w.conv3[2])
        # conv4: pad 1 over a single position, so only the middle tap sees data.
        torch.addmm(w.conv4_bias, torch.relu_(z), w.conv4[1], out=out)
        torch.relu_(out)

    def stream(self) -> SileroStream:
        """Probabilities for one file handed over a piece at a time (see SileroStream)."""
        return SileroStream(self)

    def _logits(
        self, features: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One LSTM stream over features [n, 128] from `state`: (logit per frame, new state)."""
        w = self._weights
        logits = torch.empty(1, len(features))
        for first in range(0, len(features), self._block_frames):
            last = min(first + self._block_frames, len(features))
            hidden, state = w.lstm(features[first:last].unsqueeze(0), state)
            torch.matmul(torch.relu_(hidden), w.head, out=logits[:, first:last])
        assert state is not None
        return logits[0] + w.head_bias, state

    def _streams_for(self, frame_count: int) -> tuple[int, int]:
        """(streams, frames per stream) for a file of frame_count frames.

        An LSTM step costs a fixed latency plus a little per stream, and each extra stream
        adds `warmup` steps of work: a stream per ~3 warm-ups of audio is about the optimum.
        """
        warmup = max(self._warmup_frames, 1)
        streams = max(1, min(self._streams, frame_count // (3 * warmup)))
        return streams, -(-frame_count // streams)

    def _run_lstm(self, features: torch.Tensor, streams: int, block: int) -> torch.Tensor:
        """Output logit per frame, the file run as `streams` parallel LSTM streams.

        Stream s covers frames [s*block - warmup, (s+1)*block) and keeps its last `block`;
        stream 0 starts at frame 0 with zero state, exactly like the stock loop, and simply
        runs `warmup` frames long. Steps go in chunks with the state carried over, so only
        one chunk of LSTM output exists at a time.
        """
        if streams == 1:
            return self._logits(features[:block], None)[0]
        w = self._weights
        warmup = self._warmup_frames
        steps = block + warmup
        starts = (torch.arange(streams) * block - warmup).clamp(min=0).unsqueeze(1)
        logits = torch.empty(streams, steps)
        state = None
        for first in range(0, steps, self._block_frames):
            last = min(first + self._block_frames, steps)
            inputs = features[starts + torch.arange(first, last)]
            hidden, state = w.lstm(inputs, state)  # [streams, last - first, 128]
            torch.matmul(torch.relu_(hidden), w.head, out=logits[:, first:last])
        logits += w.head_bias
        return torch.cat([logits[0, :block], logits[1:, warmup:].reshape(-1)])


class SileroStream:
    """One file's speech probabilities, a piece at a time, with the LSTM state and the 64
    samples of context carried from piece to piece: the values one single-stream call over
    the whole file gives, with no warm-up to recompute. Every piece but the last must be a
    whole number of frames."""

    def __init__(self, detector: BatchedSileroDetector) -> None:
        self._detector = detector
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        samples = _check_input(samples, SAMPLE_RATE_HZ)
        # A block of frames at a time: the intermediates stay a few MB whatever the piece.
        step = (self._detector._block_frames - 1) * FRAME_SAMPLES  # + the dummy = one block
        parts = [self._block(samples[i : i + step]) for i in range(0, len(samples), step)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def _block(self, samples: np.ndarray) -> np.ndarray:
        frame_count = -(-len(samples) // FRAME_SAMPLES)
        # A dummy frame ahead whose last 64 samples are the context of the block's first frame.
        lead = np.zeros(FRAME_SAMPLES - _CONTEXT_SAMPLES, dtype=np.float32)
        audio = torch.from_numpy(np.concatenate([lead, self._context, samples]))
        with torch.inference_mode():
            features = self._detector._features(audio, frame_count + 1)[1:]
            logits, self._state = self._detector._logits(features, self._state)
            probabilities = torch.sigmoid(logits).numpy()
        self._context = np.concatenate([self._context, samples])[-_CONTEXT_SAMPLES:].copy()
        return probabilities


def _block_samples(audio: torch.Tensor, first_frame: int, count: int) -> torch.Tensor:
    """Samples frames [first_frame, first_frame + count) read: 64 of context, then 512 each.

    Before the file start (the first frame's context) and past its end the model sees zeros.
    """
    start = first_frame * FRAME_SAMPLES - _CONTEXT_SAMPLES
    length = _CONTEXT_SAMPLES + count * FRAME_SAMPLES
    if start >= 0 and start + length <= len(audio):
        return audio[start : start + length]
    block = torch.zeros(length)
    source = audio[max(start, 0) : start + length]
    offset = max(-start, 0)
    block[offset : offset + len(source)] = source
    return block


def load_detector(settings: VadSettings) -> SpeechDetector:
    """Load the detector named by settings, once, at app start (no downloads).

    Sets torch's intra-op thread count for the process: VAD is the only torch user here.
    """
    torch.set_num_threads(settings.threads)
    if settings.detector == "stock":
        return StockSileroDetector(use_onnx=settings.stock_backend == "onnx")
    jit_path = _model_path("silero_vad.jit")
    detector = BatchedSileroDetector(
        _SileroWeights(jit_path),
        streams=settings.batch_streams,
        warmup_frames=round(settings.stream_warmup_s / FRAME_S),
    )
    _verify(detector, jit_path)
    return detector
