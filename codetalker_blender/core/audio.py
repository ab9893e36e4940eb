"""Reading speech: any format soundfile or librosa reads, to 16 kHz mono float32."""

from __future__ import annotations

import os
from dataclasses import dataclass

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


# The silence gate's default threshold, in dB under the clip's speech level.
DEFAULT_SILENCE_DB = -22.0


@dataclass(frozen=True)
class SilenceGate:
    """Where a clip is silent, so that the face can be held at rest there.

    A 25 ms frame (10 ms hop) is *speech* when its level is within
    ``threshold_db`` of the clip's speech level (the 99th percentile of the
    frame levels). Time further than ``hold`` seconds from every speech frame
    is *silence*: only pauses longer than twice ``hold`` count, so the weak
    consonants that start and end words (/f/, /th/, /h/ lie 20-30 dB under
    the vowels) stay inside the hold. ``fade``: seconds over which the motion
    returns to rest inside a silence.
    """

    threshold_db: float = DEFAULT_SILENCE_DB
    hold: float = 0.2
    fade: float = 0.12

    def __post_init__(self):
        if not (-120.0 < self.threshold_db < 0.0):
            raise AudioError(f"silence gate threshold must be between -120 and 0 dB, got {self.threshold_db}")
        if self.hold < 0.0 or self.fade < 0.0:
            raise AudioError("silence gate hold and fade must not be negative")


def silence_gate(enabled: bool, threshold_db: float = DEFAULT_SILENCE_DB) -> SilenceGate | None:
    """The gate a user asked for: ``None`` when they turned it off (the model's motion in silences as it is)."""
    return SilenceGate(threshold_db=threshold_db) if enabled else None


def add_gate_arguments(parser) -> None:
    """``--silence-gate DB`` and ``--no-silence-gate`` on an argparse parser; read them with ``gate_from_args``."""
    parser.add_argument("--silence-gate", type=float, default=DEFAULT_SILENCE_DB, metavar="DB",
                        help="hold the face at rest in pauses of over 0.4 s that are DB decibels under the speech "
                             "level (default %(default)s; lower it if quiet speech is held still)")
    parser.add_argument("--no-silence-gate", action="store_true",
                        help="keep the model's motion in silences (breaths and room noise can move the mouth there)")


def gate_from_args(args) -> SilenceGate | None:
    """The gate that ``add_gate_arguments``' options ask for."""
    return silence_gate(not args.no_silence_gate, args.silence_gate)


_GATE_FRAME = 400  # 25 ms at 16 kHz
_GATE_HOP = 160  # 10 ms


def speech_spans(samples: np.ndarray, gate: SilenceGate) -> np.ndarray:
    """(N,) 16 kHz samples -> (K, 2) [start, stop) seconds of speech, holds included, in order."""
    n = samples.size
    if n < _GATE_FRAME:
        return np.array([[0.0, n / SAMPLE_RATE]])
    frames = np.lib.stride_tricks.sliding_window_view(samples, _GATE_FRAME)[::_GATE_HOP]  # a view, no copy
    energy = np.empty(len(frames))
    for k in range(0, len(frames), 8192):  # in blocks: an hour of audio would otherwise copy gigabytes
        block = frames[k : k + 8192].astype(np.float64)
        energy[k : k + 8192] = np.einsum("ij,ij->i", block, block)
    level = 10.0 * np.log10(energy / _GATE_FRAME + 1e-20)
    speech = np.flatnonzero(level > np.percentile(level, 99) + gate.threshold_db)
    starts = np.maximum(speech * _GATE_HOP / SAMPLE_RATE - gate.hold, 0.0)
    stops = np.minimum((speech * _GATE_HOP + _GATE_FRAME) / SAMPLE_RATE + gate.hold, n / SAMPLE_RATE)
    # merge the overlapping intervals (starts and stops both ascend)
    new = np.r_[True, starts[1:] > stops[:-1]]
    return np.stack([starts[new], stops[np.r_[new[1:], True]]], axis=1)


def rest_gain(samples: np.ndarray, gate: SilenceGate, frames: int, fps: float) -> np.ndarray:
    """(frames,) weight of the predicted motion per motion frame: 1 in speech, falling to 0
    within ``gate.fade`` seconds after speech ends (and rising before it starts), 0 in silence."""
    t = np.arange(frames) / fps
    spans = speech_spans(samples, gate)
    # distance in seconds from each frame time to the nearest speech span
    i = np.clip(np.searchsorted(spans[:, 0], t, side="right") - 1, 0, len(spans) - 1)
    j = np.clip(i + 1, 0, len(spans) - 1)
    dist = np.minimum(np.maximum(spans[i, 0] - t, 0) + np.maximum(t - spans[i, 1], 0),
                      np.maximum(spans[j, 0] - t, 0) + np.maximum(t - spans[j, 1], 0))
    if gate.fade <= 0.0:
        return (dist == 0).astype(np.float32)
    x = np.clip(1.0 - dist / gate.fade, 0.0, 1.0)
    return (x * x * (3.0 - 2.0 * x)).astype(np.float32)  # smoothstep: no velocity jump at either end
