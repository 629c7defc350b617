"""Speaker encoders: audio -> one L2-normalised voice embedding per short window.

The default backend is Resemblyzer's GE2E encoder (a 3-layer LSTM over 40 mel bands, trained
weights shipped inside the `Resemblyzer` wheel). We load its weights ourselves rather than
import the package: `import resemblyzer` imports `webrtcvad`, which needs `pkg_resources`
(gone from recent setuptools), and we only need the network, not its VAD (Silero already
found the speech). `pyannote` is an optional backend for users who have `pyannote.audio` and
its Hugging Face weights; selecting it without the package is a startup error.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.settings import SpeakerSettings

ENABLE_HINT = "install the optional extra: pip install 'voxtral-gateway[speakers]'"
_MEL_WINDOW_SAMPLES = 400  # 25 ms, as the GE2E weights were trained
_MEL_HOP_SAMPLES = 160  # 10 ms
_MEL_BANDS = 40
_TARGET_DBFS = -30.0  # Resemblyzer normalises every utterance to this loudness


class SpeakersUnavailableError(InvalidRequestError):
    """A request asked for speakers, but the server has no speaker encoder."""

    def __init__(self, param: str = "response_format") -> None:
        super().__init__(
            f"Speaker diarization is not available on this server; {ENABLE_HINT}.",
            param=param,
            code="speakers_unavailable",
        )


class SpeakerEncoder(Protocol):
    """One embedding per window of speech."""

    def embed_windows(self, samples: np.ndarray, window_s: float, hop_s: float) -> np.ndarray:
        """Embeddings (n_windows, dim), L2-normalised, of `window_s` windows every `hop_s`
        of 16 kHz samples; a clip shorter than a window gives one embedding of all of it,
        an empty clip none."""
        ...

    def embed_clips(
        self, clips: Sequence[np.ndarray], window_s: float, hop_s: float
    ) -> list[np.ndarray]:
        """`embed_windows` of each clip, in one pass where the encoder can batch them."""
        ...


class Ge2eEncoder:
    """Resemblyzer's GE2E network, run with torch on CPU (thread-safe: calls are serialised)."""

    def __init__(self, weights_path: Path) -> None:
        # torch's thread count is the process's (set with the VAD's): one core by default.
        import torch

        self._torch = torch
        self._lstm = torch.nn.LSTM(_MEL_BANDS, 256, 3, batch_first=True)
        self._linear = torch.nn.Linear(256, 256)
        state = torch.load(weights_path, map_location="cpu", weights_only=True)["model_state"]
        self._lstm.load_state_dict(
            {k.removeprefix("lstm."): v for k, v in state.items() if k.startswith("lstm.")}
        )
        self._linear.load_state_dict(
            {k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")}
        )
        self._lstm.eval()
        self._lock = threading.Lock()
        import librosa

        self._mel_basis = librosa.filters.mel(
            sr=SAMPLE_RATE_HZ, n_fft=_MEL_WINDOW_SAMPLES, n_mels=_MEL_BANDS
        )

    def embed_windows(self, samples: np.ndarray, window_s: float, hop_s: float) -> np.ndarray:
        return self.embed_clips([samples], window_s, hop_s)[0]

    def embed_clips(
        self, clips: Sequence[np.ndarray], window_s: float, hop_s: float
    ) -> list[np.ndarray]:
        """All clips' windows through the LSTM as one batch (per window length): on CPU a
        call costs about the same for 1 window as for 20, so a window's regions go together."""
        window = max(1, round(window_s * SAMPLE_RATE_HZ / _MEL_HOP_SAMPLES))
        hop = max(1, round(hop_s * SAMPLE_RATE_HZ / _MEL_HOP_SAMPLES))
        windows = [self._mel_windows(clip, window, hop) for clip in clips]
        by_length: dict[int, list[tuple[int, int]]] = {}
        for n, found in enumerate(windows):
            for k, frames in enumerate(found):
                by_length.setdefault(len(frames), []).append((n, k))
        rows: dict[tuple[int, int], np.ndarray] = {}
        torch = self._torch
        for keys in by_length.values():
            batch = torch.from_numpy(np.stack([windows[n][k] for n, k in keys]))
            with self._lock, torch.inference_mode():
                _, (hidden, _) = self._lstm(batch)
                raw = torch.relu(self._linear(hidden[-1]))
                raw = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-9)
            rows.update(zip(keys, raw.numpy(), strict=True))
        return [
            np.array([rows[(n, k)] for k in range(len(found))], dtype=np.float32).reshape(-1, 256)
            for n, found in enumerate(windows)
        ]

    def _mel_windows(self, samples: np.ndarray, window: int, hop: int) -> list[np.ndarray]:
        """The clip's mel frames cut into `window`-frame windows every `hop` (one shorter
        window for a short clip, none for an empty one)."""
        if len(samples) == 0:
            return []
        # At least one FFT window, so the STFT is defined (librosa warns on shorter input).
        samples = np.pad(samples, (0, max(0, _MEL_WINDOW_SAMPLES - len(samples))))
        mel = self._mel_frames(_normalise_loudness(samples))
        if len(mel) <= window:
            return [mel]
        # The last window ends at the clip's end, so no speech is left out.
        starts = [*range(0, len(mel) - window, hop), len(mel) - window]
        return [mel[s : s + window] for s in starts]

    def _mel_frames(self, samples: np.ndarray) -> np.ndarray:
        """Power mel spectrogram (frames, 40), as librosa's melspectrogram computes it."""
        import librosa

        power = np.abs(
            librosa.stft(samples, n_fft=_MEL_WINDOW_SAMPLES, hop_length=_MEL_HOP_SAMPLES)
        )
        # torch's matmul, on the process's torch threads: numpy's would wake OpenBLAS's own
        # thread pool, whose spinning tripled the encoder's CPU time on a busy 2-core machine.
        torch = self._torch
        mel = torch.from_numpy(self._mel_basis) @ torch.from_numpy((power**2).astype(np.float32))
        return mel.T.contiguous().numpy()


def _normalise_loudness(samples: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms < 1e-6:
        return samples.astype(np.float32)
    gain = 10 ** (_TARGET_DBFS / 20) / rms
    return (samples * gain).astype(np.float32)


def resemblyzer_weights() -> Path | None:
    """The GE2E weights inside the installed Resemblyzer wheel, found without importing it."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    return path if path.is_file() else None


def check_backend(settings: SpeakerSettings) -> None:
    """At startup: a selected backend whose package is missing is a configuration error."""
    if settings.backend == "pyannote" and importlib.util.find_spec("pyannote.audio") is None:
        raise RuntimeError(
            "VOXTRAL_SPEAKERS__BACKEND=pyannote needs pyannote.audio and its Hugging Face "
            "weights: pip install pyannote.audio, then set VOXTRAL_SPEAKERS__PYANNOTE_MODEL"
        )


def is_available(settings: SpeakerSettings) -> bool:
    match settings.backend:
        case "resemblyzer":
            return resemblyzer_weights() is not None and all(
                importlib.util.find_spec(name) is not None for name in ("librosa", "scipy")
            )
        case "pyannote":
            return importlib.util.find_spec("pyannote.audio") is not None
        case _:
            return False


def load_speaker_encoder(settings: SpeakerSettings) -> SpeakerEncoder:
    """Build the configured encoder (seconds: loads torch and the weights); call off the loop.

    Raises SpeakersUnavailableError when the backend's package is not installed.
    """
    if settings.backend == "pyannote":
        return _PyannoteEncoder(settings)
    weights = resemblyzer_weights() if settings.backend == "resemblyzer" else None
    if weights is None:
        raise SpeakersUnavailableError
    return Ge2eEncoder(weights)


class _PyannoteEncoder:
    """pyannote's embedding model (e.g. `pyannote/wespeaker-voxceleb-resnet34-LM`), for users
    who have the package and the weights; untested here, where neither can be installed."""

    def __init__(self, settings: SpeakerSettings) -> None:
        if importlib.util.find_spec("pyannote.audio") is None:
            raise SpeakersUnavailableError
        from pyannote.audio import Inference, Model  # type: ignore[import-not-found]

        model = Model.from_pretrained(settings.pyannote_model)
        self._inference = Inference(model, window="whole")
        self._lock = threading.Lock()

    def embed_windows(self, samples: np.ndarray, window_s: float, hop_s: float) -> np.ndarray:
        import torch

        window = round(window_s * SAMPLE_RATE_HZ)
        hop = round(hop_s * SAMPLE_RATE_HZ)
        starts = [0] if len(samples) <= window else range(0, len(samples) - window + 1, hop)
        rows = []
        with self._lock:
            for start in starts:
                clip = torch.from_numpy(samples[start : start + window][None].copy())
                rows.append(np.asarray(self._inference({"waveform": clip, "sample_rate": 16000})))
        embeddings = np.stack(rows).reshape(len(rows), -1)
        return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)

    def embed_clips(
        self, clips: Sequence[np.ndarray], window_s: float, hop_s: float
    ) -> list[np.ndarray]:
        return [self.embed_windows(clip, window_s, hop_s) for clip in clips]
