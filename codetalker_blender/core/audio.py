"""Reading speech: any format soundfile or librosa reads, to 16 kHz mono float32."""

from __future__ import annotations

import os

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16000
# Peak amplitude under which a clip counts as pure silence (-80 dBFS).
SILENCE_PEAK = 1e-4


def _read_soundfile(path: str) -> tuple[np.ndarray, int] | None:
    import soundfile as sf

    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None
    return data, sr


def _read_librosa(path: str) -> tuple[np.ndarray, int]:
    import warnings

    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, sr = librosa.load(path, sr=None, mono=False)
    except Exception as exc:  # librosa/audioread raise many unrelated types
        first = str(exc).splitlines()[0] if str(exc) else "unknown or corrupt format"
        raise AudioError(f"could not read audio file {path}: {first}") from None
    data = np.asarray(data, dtype=np.float32)
    return (data[:, None] if data.ndim == 1 else data.T), sr


def to_mono_16k(data: np.ndarray, sample_rate: int) -> np.ndarray:
    """(N,) or (N, channels) samples at any rate -> (M,) mono at 16 kHz, float32."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    elif data.ndim != 1:
        raise AudioError(f"audio array must be 1-D or (samples, channels), got shape {data.shape}")
    if data.size == 0:
        raise AudioError("the audio holds no samples")
    if not np.isfinite(data).all():
        raise AudioError("the audio holds NaN or infinite samples")
    if sample_rate <= 0:
        raise AudioError(f"invalid sample rate {sample_rate}")
    if sample_rate != SAMPLE_RATE:
        import librosa

        data = librosa.resample(data, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    return np.ascontiguousarray(data, dtype=np.float32)


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """Read an audio file as 16 kHz mono float32 samples.

    wav, flac and ogg (and mp3 where libsndfile supports it) are read with
    soundfile; anything else falls back to librosa. Raises AudioError for a
    missing, unreadable or empty file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(f"audio file not found: {path}")
    if os.path.isdir(path):
        raise AudioError(f"expected an audio file, got a folder: {path}")
    if os.path.getsize(path) == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    read = _read_soundfile(path)
    data, sr = read if read is not None else _read_librosa(path)
    if data.shape[0] == 0:
        raise AudioError(f"audio file holds no samples: {path}")
    try:
        return to_mono_16k(data, sr)
    except AudioError as exc:
        raise AudioError(f"{path}: {exc}") from None


def is_silent(samples: np.ndarray) -> bool:
    """True for pure silence (peak under -80 dBFS)."""
    return float(np.max(np.abs(samples))) < SILENCE_PEAK
