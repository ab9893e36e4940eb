"""Stage 2: the speech-conditioned autoregressive predictor.

:class:`CodeTalker` holds both stages: ``autoencoder`` (stage 1) plus the
predictor modules, named as in the published stage-2 checkpoints
(``transformer_decoder.layers.N.self_attn.in_proj_weight`` ...). Its
``state_dict()`` minus ``autoencoder.*`` equals a published stage-2 file's,
with the wav2vec2 weight-norm names of current transformers (see
checkpoint.py for the mapping).

Shapes: S audio features, T motion frames, F predictor width, fq codes per
frame, zd code width, V*3 flattened vertices.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig
from .vqvae import VQAutoEncoder, sinusoid_table


def alibi_slopes(n_head: int) -> list[float]:
    """Per-head slopes of the temporal bias (0.25, 0.0625, ... for 4 heads)."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_head).is_integer():
        return power_of_2(n_head)
    closest = 2 ** math.floor(math.log2(n_head))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n_head - closest]


def temporal_bias(n_head: int, period: int, query_pos: torch.Tensor, key_len: int) -> torch.Tensor:
    """Self-attention mask rows for the given query positions: (n_head, Q, key_len).

    For key j <= query i the bias is -slope_h * floor((i - j) / period); future
    keys are -inf. The formula holds for any length: the published code tabulates
    it for 600 frames only.
    """
    slopes = torch.tensor(alibi_slopes(n_head), dtype=torch.float32, device=query_pos.device)
    j = torch.arange(key_len, device=query_pos.device)
    dist = query_pos.view(-1, 1) - j.view(1, -1)  # (Q, K)
    bias = -torch.div(dist.clamp(min=0), period, rounding_mode="floor").to(torch.float32)
    bias = slopes.view(-1, 1, 1) * bias.unsqueeze(0)
    return bias.masked_fill((dist < 0).unsqueeze(0), float("-inf"))


def alignment_mask(frames: int, num_features: int, feats_per_frame: int, device=None) -> torch.Tensor:
    """Cross-attention mask (frames, num_features), True = blocked.

    Frame i sees audio features i*r ... i*r + r - 1 only (r = feats_per_frame).
    """
    i = torch.arange(frames, device=device).view(-1, 1)
    j = torch.arange(num_features, device=device).view(1, -1)
    return ~((j >= i * feats_per_frame) & (j < (i + 1) * feats_per_frame))


class PeriodicPositionalEncoding(nn.Module):
    """Sinusoid table of ``period`` rows tiled to ``ppe_length``: buffer ``pe`` (1, L, F)."""

    def __init__(self, dim: int, period: int, length: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        table = sinusoid_table(period, dim).repeat(length // period, 1)
        self.register_buffer("pe", table.unsqueeze(0))

    def rows(self, positions: torch.Tensor) -> torch.Tensor:
        """Table rows for absolute positions, periodic beyond the stored length: (N, F)."""
        return self.pe[0, positions % self.pe.shape[1]]

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:  # x: (B, T, F)
        pos = torch.arange(start, start + x.shape[1], device=x.device)
        return self.dropout(x + self.rows(pos))


def build_audio_encoder(cfg: ModelConfig) -> nn.Module:
    """The speech encoder ``cfg`` names, built empty (no weights are fetched).

    wav2vec2 (``cfg.wav2vec2``, Hugging Face fields) or Whisper's encoder
    (``cfg.whisper``, see whisper.py); :func:`audio_hidden_size` gives their width.
    """
    if cfg.audio_encoder == "whisper":
        from .whisper import WhisperEncoder, WhisperEncoderConfig

        return WhisperEncoder(WhisperEncoderConfig.from_dict(cfg.whisper))
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    return Wav2Vec2Model(Wav2Vec2Config(**cfg.wav2vec2))


def audio_hidden_size(encoder: nn.Module) -> int:
    """Width of the features an audio encoder yields."""
    return encoder.hidden_size if hasattr(encoder, "hidden_size") else encoder.config.hidden_size


class CodeTalker(nn.Module):
    """Both stages of CodeTalker. Build it here, load weights with checkpoint.py."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        p = cfg.predictor
        f = p.feature_dim
        self.autoencoder = VQAutoEncoder(cfg.vq)
        self.audio_encoder = build_audio_encoder(cfg)
        self.audio_feature_map = nn.Linear(audio_hidden_size(self.audio_encoder), f)
        self.vertice_map = nn.Linear(cfg.vq.vertice_dim, f)
        self.PPE = PeriodicPositionalEncoding(f, p.period, p.ppe_length)
        layer = nn.TransformerDecoderLayer(
            d_model=f, nhead=p.n_head, dim_feedforward=2 * f, batch_first=True
        )
        self.transformer_decoder = nn.TransformerDecoder(layer, num_layers=p.num_layers)
        self.feat_map = nn.Linear(f, cfg.vq.code_dim, bias=False)
        self.learnable_style_emb = nn.Embedding(len(cfg.subjects), f)

    @property
    def device(self) -> torch.device:
        return self.feat_map.weight.device

    def style_embedding(self, weights: torch.Tensor) -> torch.Tensor:
        """Style vector over the subjects (n_subjects,) -> embedding (F,): B^T s / |s|_1."""
        w = weights.to(self.learnable_style_emb.weight)
        return torch.matmul(w, self.learnable_style_emb.weight) / w.abs().sum()

    def predictor_step_full(
        self, tokens: torch.Tensor, memory: torch.Tensor
    ) -> torch.Tensor:
        """Run the decoder over a whole token sequence (teacher forcing / reference).

        tokens (1, T, F) already carrying the PPE, memory (1, S, F) -> (1, T, fq*zd).
        """
        t = tokens.shape[1]
        pos = torch.arange(t, device=tokens.device)
        tgt_mask = temporal_bias(self.cfg.predictor.n_head, self.cfg.predictor.period, pos, t)
        tgt_mask = tgt_mask.repeat(tokens.shape[0], 1, 1).to(tokens.dtype)  # (B*heads, T, T)
        mem_mask = alignment_mask(t, memory.shape[1], self.cfg.timing.feats_per_frame, tokens.device)
        out = self.transformer_decoder(tokens, memory, tgt_mask=tgt_mask, memory_mask=mem_mask)
        return self.feat_map(out)
