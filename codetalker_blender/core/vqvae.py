"""Stage 1: the VQ autoencoder, CodeTalker's discrete motion prior.

Module and attribute names follow the published checkpoints, so that
``state_dict()`` keys equal theirs (``encoder.squasher.0.0.weight`` ...).
Shapes in comments: B batch, T frames, H hidden size, fq codes per frame,
zd code width, V*3 flattened vertices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import VQConfig


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """The usual sin/cos table, (length, dim): even columns sin, odd columns cos."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table


class PositionalEncoding(nn.Module):
    """Sinusoidal encoding with the published indexing quirk.

    The table is stored as (5000, 1, H) and added to batch-first input as
    ``x + pe[:B]``: batch element b gets row b for every frame, so at batch
    size 1 each frame gets row 0. The weights were trained with this.
    """

    def __init__(self, dim: int, max_len: int = 5000, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoid_table(max_len, dim).unsqueeze(1))  # (L, 1, H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, H)
        return self.dropout(x + self.pe[: x.size(0)])


class LinearEmbedding(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Bidirectional multi-head self-attention, scores scaled by H^-0.5."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.scale = dim**-0.5  # the whole width, not the head width (published)
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H)."""
        b, t, h = x.shape
        # (B, T, 3H) -> 3 x (B, heads, T, H/heads); channel order is (qkv, head, dim)
        q, k, v = self.to_qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        out = torch.matmul(self.dropout(torch.softmax(scores, dim=-1)), v)  # (B, heads, T, H/heads)
        return self.to_out(out.transpose(1, 2).reshape(b, t, h))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.l1 = nn.Linear(dim, hidden)
        self.l2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.l2(self.dropout(F.gelu(self.l1(x), approximate="tanh"))))


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class Transformer(nn.Module):
    """Pre-norm transformer: ``num_layers`` x [x + Attn(LN(x)), x + MLP(LN(x))]."""

    def __init__(self, dim: int, num_layers: int, heads: int, mlp_dim: int):
        super().__init__()
        blocks: list[nn.Module] = []
        for _ in range(num_layers):
            blocks.append(Residual(PreNorm(dim, Attention(dim, heads))))
            blocks.append(Residual(PreNorm(dim, FeedForward(dim, mlp_dim))))
        self.net = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.net:
            x = block(x)
        return x

    def last_frame(self, x: torch.Tensor, key_bias: torch.Tensor | None = None) -> torch.Tensor:
        """The last frame's output for one sequence (inference): x (T, H) -> (1, H).

        Equal to ``forward(x[None])[0, -1:]`` (without ``key_bias``), but the
        last block's attention and MLP run for that frame only, in plain tensor
        operations (it runs once per generated frame). ``key_bias`` (T,) is
        added to every query's scores (-inf hides a padding frame).
        """
        t, width = x.shape
        blocks = list(self.net)
        for n in range(0, len(blocks), 2):
            norm1, attn = blocks[n].fn.norm, blocks[n].fn.fn  # Residual(PreNorm(Attention))
            norm2, mlp = blocks[n + 1].fn.norm, blocks[n + 1].fn.fn  # Residual(PreNorm(FeedForward))
            heads = attn.heads
            dh = width // heads
            y = layer_norm(x, norm1)
            w = attn.to_qkv.weight
            if n == len(blocks) - 2:  # the last frame's query only: the first H rows of the weight
                q = F.linear(y[-1:], w[:width]).view(1, heads, dh).transpose(0, 1)  # (heads, 1, dh)
                kv = F.linear(y, w[width:]).view(t, 2, heads, dh)
                k, v = kv[:, 0], kv[:, 1]  # (T, heads, dh)
                x = x[-1:]
            else:
                qkv = F.linear(y, w).view(t, 3, heads, dh)
                q, k, v = qkv[:, 0].transpose(0, 1), qkv[:, 1], qkv[:, 2]
            scores = torch.bmm(q, k.permute(1, 2, 0)).mul_(attn.scale)  # (heads, Tq, T)
            if key_bias is not None:
                scores = scores + key_bias
            o = torch.bmm(torch.softmax(scores, dim=-1), v.transpose(0, 1))  # (heads, Tq, dh)
            x = x + attn.to_out(o.transpose(0, 1).reshape(-1, width))
            y = layer_norm(x, norm2)
            x = x + mlp.l2(F.gelu(mlp.l1(y), approximate="tanh"))
        return x


def layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """``norm(x)`` without the module call's overhead (the inference loops call it per step)."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _conv_block(cfg: VQConfig) -> nn.ModuleList:
    """[Conv1d(H, H, 5, replicate padding), LeakyReLU, InstanceNorm1d over time]."""
    h = cfg.hidden_size
    return nn.ModuleList(
        [
            nn.Sequential(
                nn.Conv1d(h, h, 5, stride=1, padding=2, padding_mode="replicate"),
                nn.LeakyReLU(cfg.neg),
                nn.InstanceNorm1d(h, affine=cfg.instance_norm_affine),
            )
        ]
    )


class MotionEncoder(nn.Module):
    """Motion (B, T, V*3) -> continuous codes (B, T, fq*zd)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        h = cfg.hidden_size
        self.vertice_mapping = nn.Sequential(nn.Linear(cfg.vertice_dim, h), nn.LeakyReLU(cfg.neg))
        self.squasher = _conv_block(cfg)
        self.encoder_transformer = Transformer(h, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size)
        self.encoder_pos_embedding = PositionalEncoding(h)
        self.encoder_linear_embedding = LinearEmbedding(h, h)
        if cfg.code_projection:
            self.encoder_linear_embedding_post = LinearEmbedding(h, cfg.code_dim)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        x = self.vertice_mapping(motion).transpose(1, 2)  # (B, H, T)
        for block in self.squasher:
            x = block(x)
        x = self.encoder_linear_embedding(x.transpose(1, 2))  # (B, T, H)
        x = self.encoder_transformer(self.encoder_pos_embedding(x))
        if hasattr(self, "encoder_linear_embedding_post"):
            x = self.encoder_linear_embedding_post(x)
        return x  # (B, T, fq*zd)


class MotionDecoder(nn.Module):
    """Codes regrouped per frame (B, T, fq*zd) -> motion (B, T, V*3)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        h = cfg.hidden_size
        if cfg.code_projection:
            self.decoder_linear_embedding_pre = LinearEmbedding(cfg.code_dim, h)
        self.expander = _conv_block(cfg)
        self.decoder_transformer = Transformer(h, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size)
        self.decoder_pos_embedding = PositionalEncoding(h)
        self.decoder_linear_embedding = LinearEmbedding(h, h)
        self.vertice_map_reverse = nn.Linear(h, cfg.vertice_dim, bias=cfg.output_bias)

    def hidden(self, codes: torch.Tensor) -> torch.Tensor:
        """Everything but the output projection: (B, T, fq*zd) -> (B, T, H)."""
        x = codes
        if hasattr(self, "decoder_linear_embedding_pre"):
            x = self.decoder_linear_embedding_pre(x)
        x = x.transpose(1, 2)  # (B, H, T)
        for block in self.expander:
            x = block(x)
        x = self.decoder_linear_embedding(x.transpose(1, 2))
        return self.decoder_transformer(self.decoder_pos_embedding(x))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.vertice_map_reverse(self.hidden(codes))


class VectorQuantizer(nn.Module):
    """Nearest-neighbour lookup in a codebook of ``n_embed`` rows of width zd."""

    def __init__(self, n_embed: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, dim)
        self.embedding.weight.data.uniform_(-1.0 / n_embed, 1.0 / n_embed)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of z (..., zd) -> (...).

        Squared distance as |z|^2 + |e|^2 - 2 z.e, first index on ties, the
        way the published quantiser computes it (so near-ties break alike).
        """
        flat = z.reshape(-1, z.shape[-1])
        codebook = self.embedding.weight
        d = (
            torch.sum(flat**2, dim=1, keepdim=True)
            + torch.sum(codebook**2, dim=1)
            - 2 * torch.matmul(flat, codebook.t())
        )
        return torch.argmin(d, dim=1).view(z.shape[:-1])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return self.embedding(idx)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantise z (..., zd); returns (quantised with straight-through gradient, indices)."""
        idx = self.indices(z)
        zq = self.lookup(idx)
        return z + (zq - z).detach(), idx


class VQAutoEncoder(nn.Module):
    """Stage 1. ``state_dict()`` keys match the published stage-1 checkpoints."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = MotionEncoder(cfg)
        self.decoder = MotionDecoder(cfg)
        self.quantize = VectorQuantizer(cfg.n_embed, cfg.zquant_dim)

    def encode(self, motion: torch.Tensor) -> torch.Tensor:
        """Motion (B, T, V*3) -> continuous codes (B, T, fq, zd)."""
        z = self.encoder(motion)
        return z.view(z.shape[0], z.shape[1], self.cfg.face_quan_num, self.cfg.zquant_dim)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantised codes (B, T, fq, zd) -> motion (B, T, V*3)."""
        return self.decoder(codes.flatten(2))

    def decode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """Code indices (B, T, fq) -> motion (B, T, V*3)."""
        return self.decode(self.quantize.lookup(idx))

    def forward(self, motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct motion; returns (reconstruction, continuous codes, quantised codes)."""
        z = self.encode(motion)
        zq, _ = self.quantize(z)
        return self.decode(zq), z, zq
