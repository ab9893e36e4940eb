"""Speech features for the predictor, from either front end.

wav2vec2, run the way CodeTalker customises the forward pass:
conv feature extractor (50 Hz) -> resample in time to the predictor's feature
rate -> feature projection -> transformer encoder -> last hidden state.

Whisper's encoder (the bundled models, see whisper.py): at most 30 s per
pass, 50 Hz output features resampled in time the same way afterwards.

Long audio is encoded in overlapping windows so that memory stays bounded
(the transformer's attention is quadratic in length, and the first conv layer
alone holds 512 channels at 3.2 kHz). Each window sees ``context`` seconds of
audio on either side of the part it contributes; inside a clip no longer than
``window`` seconds the result is exactly the single-pass one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .audio import SAMPLE_RATE
from .config import WAV2VEC2_FEATURE_RATE, TimingConfig
from .errors import AudioError
from .whisper import SAMPLES_PER_FEATURE, WINDOW_SECONDS, WhisperEncoder

HOP = int(SAMPLE_RATE / WAV2VEC2_FEATURE_RATE)  # 320 samples per 50 Hz feature


@dataclass(frozen=True)
class Chunking:
    """Windowed encoding of long audio (seconds)."""

    window: float = 60.0  # clips up to this long are encoded in one pass (exact)
    context: float = 5.0  # extra audio each window sees on each side


# Whisper sees at most 30 s per pass: a 20 s core plus 5 s on each side.
WHISPER_CHUNKING = Chunking(window=20.0, context=5.0)
# Level the Whisper front end hears: unit-variance audio scaled to -26 dBFS RMS.
WHISPER_LEVEL = 0.05


def normalise(audio: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance, as wav2vec2's feature extractor does (eps 1e-7)."""
    audio = audio.to(torch.float32)
    return (audio - audio.mean()) / torch.sqrt(audio.var(unbiased=False) + 1e-7)


def conv_feature_count(num_samples: int, encoder) -> int:
    """Number of 50 Hz features the encoder yields for ``num_samples``."""
    if isinstance(encoder, WhisperEncoder):
        return encoder.feature_count(num_samples)
    n = num_samples
    for k, s in zip(encoder.config.conv_kernel, encoder.config.conv_stride):
        n = (n - k) // s + 1
    return n


def frame_count(num_features: int, timing: TimingConfig) -> int:
    """Motion frames for ``num_features`` 50 Hz features (the reference's rounding)."""
    if timing.resamples_features:
        return int(num_features / WAV2VEC2_FEATURE_RATE * timing.fps)
    return num_features // timing.feats_per_frame


def _resample_positions(n_in: int, n_out: int) -> torch.Tensor:
    """Fractional input positions of F.interpolate(linear, align_corners=True)."""
    if n_out == 1:
        return torch.zeros(1, dtype=torch.float64)
    return torch.arange(n_out, dtype=torch.float64) * ((n_in - 1) / (n_out - 1))


def _gather_linear(feats: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of feats (1, N, C) at fractional positions pos (M,) -> (1, M, C)."""
    lo = pos.floor().long().clamp(0, feats.shape[1] - 1)
    hi = (lo + 1).clamp(max=feats.shape[1] - 1)
    w = (pos - lo.to(pos.dtype)).to(device=feats.device, dtype=feats.dtype).view(1, -1, 1)
    lo, hi = lo.to(feats.device), hi.to(feats.device)
    return feats[:, lo] * (1 - w) + feats[:, hi] * w


@torch.no_grad()
def encode_audio(
    encoder,
    audio: torch.Tensor,
    timing: TimingConfig,
    chunking: Chunking = Chunking(),
) -> tuple[torch.Tensor, int]:
    """Speech features for the predictor.

    audio: 16 kHz mono samples (N,), already normalised.
    Returns (features (1, frames * feats_per_frame, hidden), frames).
    """
    if isinstance(encoder, WhisperEncoder):
        return _encode_whisper(encoder, audio, timing, chunking)
    device = next(encoder.parameters()).device
    n_feat = conv_feature_count(audio.numel(), encoder)
    if n_feat < 1:
        raise AudioError("the audio is too short to encode (under 25 ms)")
    frames = frame_count(n_feat, timing)
    if frames < 1:
        raise AudioError("the audio is too short for a single motion frame")
    m = frames * timing.feats_per_frame  # features the predictor consumes
    # Fractional 50 Hz position of each consumed feature, over the whole clip.
    positions = (
        _resample_positions(n_feat, m) if timing.resamples_features else torch.arange(m, dtype=torch.float64)
    )

    window = int(chunking.window * WAV2VEC2_FEATURE_RATE)
    if n_feat <= window:
        audio = audio.to(device)
        if timing.resamples_features:
            feats = encoder.feature_extractor(audio.view(1, -1))  # (1, 512, N)
            feats = F.interpolate(feats, size=m, mode="linear", align_corners=True).transpose(1, 2)
        else:
            feats = encoder.feature_extractor(audio.view(1, -1)).transpose(1, 2)[:, :m]
        hidden, _ = encoder.feature_projection(feats)
        return encoder.encoder(hidden).last_hidden_state, frames

    # Overlapping windows in 50 Hz feature units: a window contributes the
    # features whose positions fall in its core [start, stop) and sees
    # ``context`` more features on both sides.
    ctx = int(math.ceil(chunking.context * WAV2VEC2_FEATURE_RATE))
    out = []
    for start in range(0, n_feat, window):
        stop = min(start + window, n_feat)
        a, b = max(0, start - ctx), min(n_feat, stop + ctx)
        seen = (positions >= a) & (positions <= b - 1)
        pos = positions[seen]
        core = (pos >= start) & (pos < stop)
        if not bool(core.any()):
            continue
        chunk = audio[a * HOP : min(audio.numel(), (b - 1) * HOP + 400)].to(device)
        feats = encoder.feature_extractor(chunk.view(1, -1)).transpose(1, 2)  # (1, ~b - a, 512)
        hidden, _ = encoder.feature_projection(_gather_linear(feats, pos - a))
        hidden = encoder.encoder(hidden).last_hidden_state
        out.append(hidden[:, core.to(hidden.device)])
    return torch.cat(out, dim=1), frames


def _encode_whisper(
    encoder: WhisperEncoder, audio: torch.Tensor, timing: TimingConfig, chunking: Chunking
) -> tuple[torch.Tensor, int]:
    """Whisper features (1, frames * feats_per_frame, W) at the predictor's rate."""
    feats = whisper_features(encoder, audio, chunking)
    frames = frame_count(feats.shape[1], timing)
    if frames < 1:
        raise AudioError("the audio is too short for a single motion frame")
    return to_feature_rate(feats, frames, timing), frames


def whisper_features(encoder: WhisperEncoder, audio: torch.Tensor, chunking: Chunking = WHISPER_CHUNKING) -> torch.Tensor:
    """50 Hz Whisper features (1, N // 320, W) of normalised audio (N,).

    Windows hold ``chunking.window`` seconds of core plus ``chunking.context``
    on each side, at most 30 s in all (a larger chunking is shrunk to
    WHISPER_CHUNKING); a clip that fits in one 30 s pass is encoded whole.
    """
    if chunking.window + 2 * chunking.context > WINDOW_SECONDS:
        chunking = WHISPER_CHUNKING
    device = next(encoder.parameters()).device
    n_feat = encoder.feature_count(audio.numel())
    if n_feat < 1:
        raise AudioError("the audio is too short to encode (under 20 ms)")
    audio = audio.to(device=device, dtype=torch.float32) * WHISPER_LEVEL
    hop = SAMPLES_PER_FEATURE
    if audio.numel() <= int(WINDOW_SECONDS * SAMPLE_RATE):
        return encoder.encode_window(audio)
    window, ctx = int(chunking.window * WAV2VEC2_FEATURE_RATE), int(chunking.context * WAV2VEC2_FEATURE_RATE)
    parts = []
    for start in range(0, n_feat, window):
        stop = min(start + window, n_feat)
        a, b = max(0, start - ctx), min(n_feat, stop + ctx)
        out = encoder.encode_window(audio[a * hop : b * hop])
        parts.append(out[:, start - a : stop - a])
    return torch.cat(parts, dim=1)


def to_feature_rate(feats: torch.Tensor, frames: int, timing: TimingConfig) -> torch.Tensor:
    """50 Hz features (1, N, C) -> the predictor's (1, frames * feats_per_frame, C).

    Linear interpolation (align_corners) when the rates differ, as the
    reference does for vocaset; otherwise the first frames * r features.
    """
    m = frames * timing.feats_per_frame
    if timing.resamples_features:
        return F.interpolate(feats.transpose(1, 2), size=m, mode="linear", align_corners=True).transpose(1, 2)
    return feats[:, :m]
