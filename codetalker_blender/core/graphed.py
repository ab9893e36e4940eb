"""Fast mode as one static-shape step, replayed as a CUDA graph.

On a GPU the per-frame work of fast mode is a few hundred small kernels, so
launching them from Python, not computing them, sets the pace. Here the whole
step (predictor with a ring-buffer key/value cache, quantisation, the bounded
stage-1 feedback decode, the next input token) is written with shapes that do
not depend on the frame index: the index lives in a device tensor, windows
are fixed-size rings, and positions that do not exist yet are masked. The
step is captured once as a CUDA graph and replayed per frame.

It computes what :func:`inference.generate_motion` computes with the same
``DecodeOptions`` windows (up to float rounding: the InstanceNorm statistics
come from running sums here). On the CPU it runs the same step eagerly; the
tests check the two against each other.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .inference import cross_attention_memory, feedback_map
from .predictor import alibi_slopes


class StaticFastLoop:
    """State and step of fast-mode inference with fixed shapes."""

    def __init__(self, model, memory: torch.Tensor, frames: int, style: torch.Tensor,
                 feedback_window: int, attention_window: int):
        cfg = model.cfg
        self.model = model
        self.ae = model.autoencoder
        dev, dt = memory.device, memory.dtype
        self.dev, self.dt = dev, dt
        p = cfg.predictor
        self.f, self.h = p.feature_dim, p.n_head
        self.dh = self.f // self.h
        self.period = p.period
        self.r = cfg.timing.feats_per_frame
        self.fq, self.zd = cfg.vq.face_quan_num, cfg.vq.zquant_dim
        self.layers = list(model.transformer_decoder.layers)
        self.scale = 1.0 / math.sqrt(self.dh)
        # predictor: audio keys/values once, a ring of the last L tokens' keys/values
        self.cross = cross_attention_memory(self.layers, memory, self.h, self.r)
        self.L = attention_window
        self.keys = [torch.zeros(self.L, self.h, self.dh, device=dev, dtype=dt) for _ in self.layers]
        self.values = [torch.zeros(self.L, self.h, self.dh, device=dev, dtype=dt) for _ in self.layers]
        self.slot_pos = torch.full((self.L,), -1, dtype=torch.long, device=dev)
        self.slopes = torch.tensor(alibi_slopes(self.h), device=dev, dtype=dt).view(-1, 1)
        # stage-1 feedback: the last k inputs, the last W conv outputs, running sums for InstanceNorm
        dec = self.ae.decoder
        self.conv, self.act, self.norm = dec.expander[0]
        self.k = self.conv.kernel_size[0]
        self.pad = self.k // 2
        if feedback_window < self.k:
            raise ValueError(f"feedback window must be at least {self.k} frames")
        self.W = feedback_window
        c_in, c_out = self.conv.in_channels, self.conv.out_channels
        self.conv_w = self.conv.weight.reshape(c_out, c_in * self.k)  # (H, C*k), c-major then tap
        self.in_ring = torch.zeros(self.k, c_in, device=dev, dtype=dt)
        self.conv_ring = torch.zeros(self.W, c_out, device=dev, dtype=dt)
        self.s1 = torch.zeros(c_out, device=dev, dtype=torch.float64)
        self.s2 = torch.zeros(c_out, device=dev, dtype=torch.float64)
        self.pe0 = dec.decoder_pos_embedding.pe[0]  # (1, H): the published batch-size-1 quirk
        # loop state
        self.i = torch.zeros((), dtype=torch.long, device=dev)
        self.codes = torch.zeros(frames, self.fq, self.zd, device=dev, dtype=dt)
        self.style = style.view(1, -1)
        self.x = self.style.clone()  # next input token, before the PPE
        self.ppe = model.PPE.pe[0]
        self.fb_weight, self.fb_bias = feedback_map(model)
        # constant index helpers
        self.r_offsets = torch.arange(self.r, device=dev)
        tt = torch.arange(self.pad + 1, device=dev).view(-1, 1)  # targets i-pad .. i
        jj = torch.arange(self.k, device=dev).view(1, -1)  # taps
        self.tap_offsets = tt - self.pad + jj - self.pad  # input position - i, (pad+1, k)
        self.target_offsets = torch.arange(self.pad + 1, device=dev) - self.pad
        self.window_offsets = torch.arange(self.W, device=dev) - (self.W - 1)

    # ------------------------------------------------------------------ one frame
    def step(self) -> None:
        i = self.i
        x = self.x + self.ppe.index_select(0, torch.remainder(i, self.ppe.shape[0]).view(1))
        x = self._predict(i, x)
        z = self.model.feat_map(x).view(self.fq, self.zd)
        zq = self.ae.quantize.lookup(self.ae.quantize.indices(z))
        zq = z + (zq - z)  # the published straight-through value
        self.codes.index_copy_(0, i.view(1), zq.unsqueeze(0))
        last = self._feedback(i, zq.reshape(1, -1))
        token = F.linear(last, self.fb_weight, self.fb_bias) + self.style
        self.x.copy_(token)
        self.i.add_(1)

    def _predict(self, i, x):
        f, h, dh = self.f, self.h, self.dh
        slot = torch.remainder(i, self.L).view(1)
        self.slot_pos.index_copy_(0, slot, i.view(1))
        dist = torch.div(i - self.slot_pos, self.period, rounding_mode="floor").to(self.dt)
        bias = torch.where(self.slot_pos >= 0, -self.slopes * dist, torch.full_like(dist, float("-inf")))
        mem_idx = i * self.r + self.r_offsets
        for layer, (ck, cv), keys, values in zip(self.layers, self.cross, self.keys, self.values):
            sa = layer.self_attn
            q, k, v = F.linear(x, sa.in_proj_weight, sa.in_proj_bias).view(3, h, dh)
            keys.index_copy_(0, slot, k.unsqueeze(0))
            values.index_copy_(0, slot, v.unsqueeze(0))
            scores = torch.einsum("hd,nhd->hn", q, keys) * self.scale + bias
            o = torch.einsum("hn,nhd->hd", torch.softmax(scores, dim=-1), values).reshape(1, f)
            x = layer.norm1(x + sa.out_proj(o))
            if cv is None:  # one audio feature per frame: precomputed attention output
                o = ck.index_select(0, mem_idx)
            else:
                mha = layer.multihead_attn
                q = F.linear(x, mha.in_proj_weight[:f], mha.in_proj_bias[:f]).view(h, dh)
                kc, vc = ck.index_select(0, mem_idx), cv.index_select(0, mem_idx)
                scores = torch.einsum("hd,rhd->hr", q, kc) * self.scale
                o = mha.out_proj(torch.einsum("hr,rhd->hd", torch.softmax(scores, dim=-1), vc).reshape(1, f))
            x = layer.norm2(x + o)
            x = layer.norm3(x + layer.linear2(F.relu(layer.linear1(x))))
        return x

    def _feedback(self, i, codes):
        dec = self.ae.decoder
        inp = dec.decoder_linear_embedding_pre(codes) if hasattr(dec, "decoder_linear_embedding_pre") else codes
        self.in_ring.index_copy_(0, torch.remainder(i, self.k).view(1), inp)
        # conv outputs of frames i-pad .. i (replicate padding: input positions clamped to [0, i])
        pos = torch.minimum(torch.clamp(i + self.tap_offsets, min=0), i)  # (pad+1, k)
        taps = self.in_ring.index_select(0, torch.remainder(pos, self.k).flatten()).view(self.pad + 1, self.k, -1)
        conv = self.act(taps.permute(0, 2, 1).reshape(self.pad + 1, -1) @ self.conv_w.t() + self.conv.bias)
        tpos = i + self.target_offsets
        tvalid = (tpos >= 0).view(-1, 1)
        slots = torch.remainder(tpos, self.W)
        conv = torch.where(tvalid, conv, self.conv_ring.index_select(0, slots))
        self.conv_ring.index_copy_(0, slots, conv)
        # frame i-pad is final now: into the running sums; the later ones count provisionally
        c64 = torch.where(tvalid, conv, torch.zeros_like(conv)).to(torch.float64)
        self.s1.add_(c64[0])
        self.s2.add_(c64[0] * c64[0])
        n = (i + 1).to(torch.float64)
        mean = (self.s1 + c64[1:].sum(0)) / n
        var = torch.clamp((self.s2 + (c64[1:] * c64[1:]).sum(0)) / n - mean * mean, min=0.0)
        # the transformer over the last W frames (frames before 0 masked out)
        wpos = i + self.window_offsets
        key_bias = torch.where(wpos >= 0, 0.0, float("-inf")).to(self.dt)
        hcur = (self.conv_ring.index_select(0, torch.remainder(wpos, self.W)).to(torch.float64) - mean)
        hcur = (hcur / torch.sqrt(var + self.norm.eps)).to(self.dt)
        if self.norm.affine:
            hcur = hcur * self.norm.weight + self.norm.bias
        hcur = dec.decoder_linear_embedding(hcur) + self.pe0  # (W, H)
        return dec.decoder_transformer.last_frame(hcur, key_bias)  # (1, H): frame i

    # ------------------------------------------------------------------ the loop
    def run(self, frames: int, progress=None, cancel=None) -> torch.Tensor:
        """All frames' codes (1, T, fq, zd); a CUDA graph per step on CUDA."""
        from .inference import _check_cancel

        if self.dev.type == "cuda" and frames > 8:
            step = self._capture()
        else:
            step = self.step
        for n in range(frames):
            _check_cancel(cancel)
            step()
            if progress is not None:
                if self.dev.type == "cuda" and (n % 32 == 31 or n == frames - 1):
                    torch.cuda.synchronize()  # keep the reported progress honest
                progress(n + 1, frames)
        return self.codes.unsqueeze(0)

    def _state(self) -> list[torch.Tensor]:
        return [self.i, self.x, self.codes, self.slot_pos, self.in_ring, self.conv_ring, self.s1, self.s2,
                *self.keys, *self.values]

    def _capture(self):
        saved = [t.clone() for t in self._state()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up (library handles, allocator) on a side stream
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.step()
        for t, s in zip(self._state(), saved):  # undo the warm-up and the capture's own step
            t.copy_(s)
        return graph.replay
