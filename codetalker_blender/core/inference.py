"""Autoregressive inference.

The published ``predict`` (CODETALKER_FACTS.md, "Autoregressive inference")
reruns the predictor and the stage-1 decoder over the whole prefix at every
frame. Here:

* The predictor is causal, so its keys and values are cached: each step runs
  the decoder layers on one new token only. The cross-attention keys and
  values of the audio are computed once. Same result as the full recompute.
* The stage-1 decoder is bidirectional (full attention, InstanceNorm over
  time), so feeding back frame i needs a decode of the codes so far. Its
  convolution and normalisation statistics are kept incrementally
  (:class:`_FeedbackDecoder`); in ``exact`` mode its transformer still runs
  over the whole prefix, as in the reference; only the fed-back frame goes
  through the last block, and the two linear maps from its decoder state back
  to a predictor token (via vertices) are fused into one (:func:`feedback_map`).
* ``fast`` mode runs that transformer over the last ``feedback_window`` frames
  and the predictor's self-attention over the last ``attention_window``
  frames, so time grows linearly and memory stays bounded. It is an
  approximation.

Clips longer than the reference's 600-frame tables use the same formulas
extended: the temporal bias -slope*floor((i-j)/period) and the periodic
positional encoding are defined for any length (see predictor.py). The final
stage-1 decode runs in overlapping windows past ``final_window`` frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import Cancelled
from .vqvae import layer_norm

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class DecodeOptions:
    """How the autoregressive loop is run."""

    feedback_window: int | None = None  # stage-1 frames decoded per feedback step (None: all)
    attention_window: int | None = None  # predictor self-attention span (None: all)
    final_window: int = 1800  # final stage-1 decode in windows past this many frames
    final_overlap: int = 60  # frames shared by neighbouring final-decode windows
    # With both windows set: run each frame as one static-shape step (graphed.py),
    # replayed as a CUDA graph. None: on CUDA devices only.
    static: bool | None = None

    @classmethod
    def exact(cls) -> DecodeOptions:
        return cls()

    @classmethod
    def fast(cls) -> DecodeOptions:
        return cls(feedback_window=32, attention_window=600)


def _wide_dtype(device) -> torch.dtype:
    """float64 for sums and products that must not lose precision; MPS has no float64."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def feedback_map(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The fed-back frame's path from decoder state to predictor token, as one linear map.

    The reference maps the decoder state (H) to vertices (V*3) with the
    stage-1 ``vertice_map_reverse`` and the vertices back to a token (F) with
    ``vertice_map``: two linear layers in a row, so one (F, H) matrix and bias
    do the same (up to float rounding; the product is formed in float64 where
    the device has it). That saves reading both (V*3)-wide matrices at every
    frame: 2 x 62 MB at the published vocaset size, where the fused matrix is
    4 MB. Cached per model until its weights change. Returns (weight (F, H), bias (F,)).
    """
    vm, vmr = model.vertice_map, model.autoencoder.decoder.vertice_map_reverse
    params = [vm.weight, vm.bias, vmr.weight] + ([vmr.bias] if vmr.bias is not None else [])
    key = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params)
    cached = getattr(model, "_feedback_map", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    wide = _wide_dtype(vm.weight.device)
    w = vm.weight.to(wide) @ vmr.weight.to(wide)
    b = vm.bias.to(wide) if vmr.bias is None else vm.bias.to(wide) + vm.weight.to(wide) @ vmr.bias.to(wide)
    fused = (w.to(vm.weight.dtype), b.to(vm.weight.dtype))
    model._feedback_map = (key, fused)
    return fused


def _check_cancel(cancel: CancelFn | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("inference was cancelled")


def cross_attention_memory(layers, memory: torch.Tensor, heads: int, feats_per_frame: int) -> list:
    """Per decoder layer, what its cross-attention needs from the audio, computed once.

    Frame i may attend only to its own ``feats_per_frame`` audio features. With
    one feature the softmax is exactly 1, so the attention output of frame i is
    out_proj(V_i) whatever the query: that is precomputed for all frames and
    returned as (outputs (S, F), None). Otherwise (keys, values), each (S, heads, dh).
    """
    f = memory.shape[-1]
    mem = memory[0]
    out = []
    for layer in layers:
        mha = layer.multihead_attn
        w, b = mha.in_proj_weight, mha.in_proj_bias
        v = F.linear(mem, w[2 * f :], b[2 * f :])
        if feats_per_frame == 1:
            out.append((mha.out_proj(v), None))
        else:
            k = F.linear(mem, w[f : 2 * f], b[f : 2 * f])
            out.append((k.view(-1, heads, f // heads), v.view(-1, heads, f // heads)))
    return out


class _CachedPredictor:
    """One-token-at-a-time evaluation of the stage-2 transformer decoder."""

    def __init__(self, model, memory: torch.Tensor, frames: int, attention_window: int | None):
        cfg = model.cfg
        self.model = model
        self.layers = list(model.transformer_decoder.layers)
        self.f = cfg.predictor.feature_dim
        self.h = cfg.predictor.n_head
        self.dh = self.f // self.h
        self.r = cfg.timing.feats_per_frame
        self.window = attention_window
        device, dtype = memory.device, memory.dtype
        # Cross-attention keys/values of the audio, once per layer: (S, heads, dh).
        self.cross = cross_attention_memory(self.layers, memory, self.h, self.r)
        cache_len = frames if attention_window is None else min(frames, attention_window)
        self.cache_len = cache_len
        # Self-attention cache per layer, laid out for batched matrix products over the heads:
        # keys transposed (heads, dh, cache_len), values (heads, cache_len, dh).
        self.keys = [torch.zeros(self.h, self.dh, cache_len, device=device, dtype=dtype) for _ in self.layers]
        self.values = [torch.zeros(self.h, cache_len, self.dh, device=device, dtype=dtype) for _ in self.layers]
        # Temporal bias by distance d = i - j: -slope_h * floor(d / period), stored reversed,
        # (heads, 1, cache_len) with distance d at index cache_len - 1 - d: the last n entries
        # are the bias of the n newest keys, oldest first.
        from .predictor import alibi_slopes

        slopes = torch.tensor(alibi_slopes(self.h), device=device, dtype=dtype)
        dist = torch.arange(cache_len, device=device)
        steps = torch.div(dist, cfg.predictor.period, rounding_mode="floor").to(dtype)
        self.bias_reversed = (-slopes.view(-1, 1) * steps.view(1, -1)).flip(-1).unsqueeze(1).contiguous()
        self.scale = 1.0 / math.sqrt(self.dh)

    def step(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Token i (1, F), PPE included -> decoder output (1, F)."""
        f, h, dh = self.f, self.h, self.dh
        slot = i % self.cache_len
        n = min(i + 1, self.cache_len)
        # cache slots in time order, oldest first (a ring once the window is full)
        order = None if i < self.cache_len else torch.arange(slot + 1, slot + 1 + n, device=x.device) % self.cache_len
        bias = self.bias_reversed[..., self.cache_len - n :]  # (heads, 1, n) by distance to i, oldest first
        for layer, (ck, cv), keys, values in zip(self.layers, self.cross, self.keys, self.values):
            sa = layer.self_attn
            q, k, v = F.linear(x, sa.in_proj_weight, sa.in_proj_bias).view(3, h, dh)
            keys[:, :, slot] = k
            values[:, slot] = v
            if order is None:
                kk, vv = keys[:, :, :n], values[:, :n]  # (heads, dh, n), (heads, n, dh)
            else:
                kk, vv = keys[:, :, order], values[:, order]
            scores = torch.baddbmm(bias, q.unsqueeze(1), kk, alpha=self.scale)  # (heads, 1, n)
            o = torch.bmm(torch.softmax(scores, dim=-1), vv).view(1, f)
            x = layer_norm(x + F.linear(o, sa.out_proj.weight, sa.out_proj.bias), layer.norm1)

            if cv is None:  # one audio feature per frame: the attention output is known already
                o = ck[i : i + 1]
            else:
                mha = layer.multihead_attn
                q = F.linear(x, mha.in_proj_weight[:f], mha.in_proj_bias[:f]).view(h, 1, dh)
                kc, vc = ck[i * self.r : (i + 1) * self.r], cv[i * self.r : (i + 1) * self.r]  # (r, heads, dh)
                scores = torch.bmm(q, kc.permute(1, 2, 0)) * self.scale  # (heads, 1, r)
                o = torch.bmm(torch.softmax(scores, dim=-1), vc.transpose(0, 1)).view(1, f)
                o = F.linear(o, mha.out_proj.weight, mha.out_proj.bias)
            x = layer_norm(x + o, layer.norm2)
            ff = F.linear(F.relu(F.linear(x, layer.linear1.weight, layer.linear1.bias)), layer.linear2.weight,
                          layer.linear2.bias)
            x = layer_norm(x + ff, layer.norm3)
        return x


class _FeedbackDecoder:
    """The stage-1 decode of frame i given codes 0..i, one frame at a time.

    The reference decodes the whole prefix at every step. Most of that work
    repeats: the convolution's outputs (kernel 5, replicate padding) change
    only for the last two frames when a frame is appended, so they are cached,
    and the InstanceNorm statistics over the whole prefix come from running
    sums over that cache (O(1) per frame, not O(prefix)).
    What remains per step is the transformer: over the whole prefix in exact
    mode (bidirectional attention needs it), over the last ``window`` frames in
    fast mode, whose inputs are still normalised with whole-prefix statistics.
    The last transformer block is evaluated for the last frame only.

    Per step the work is a few matrix products, so it is written as plain
    tensor operations: the convolution of the changed frames is one product
    over a strided view of the inputs; the InstanceNorm scale, the
    ``decoder_linear_embedding`` and the positional row (the same row for
    every frame at batch size 1, see vqvae.PositionalEncoding) are one
    affine map, formed once per step.
    """

    def __init__(self, decoder, frames: int, window: int | None, device, dtype):
        self.dec = decoder
        conv, self.act, norm = decoder.expander[0]
        if conv.padding_mode != "replicate" or conv.stride[0] != 1 or conv.padding[0] != conv.kernel_size[0] // 2:
            raise ValueError("the feedback decoder expects a stride-1 'same' convolution with replicate padding")
        self.norm = norm
        c_in, c_out, k = conv.in_channels, conv.out_channels, conv.kernel_size[0]
        self.pad = k // 2
        self.window = window
        # Inputs with the replicate padding built in: row r holds frame r - pad. Frame i is
        # written to its row and to the pad rows after it (the right edge repeats the newest
        # frame until the next one overwrites them); frame 0 to the pad rows before it too.
        self.padded = torch.zeros(frames + 2 * self.pad, c_in, device=device, dtype=dtype)
        # The convolution as one product over windows of k input rows: (k * C_in, C_out).
        self.conv_weight = conv.weight.detach().permute(2, 1, 0).reshape(k * c_in, c_out).to(dtype).contiguous()
        self.conv_bias = conv.bias.detach().to(dtype)
        self.conv_out = torch.zeros(frames, c_out, device=device, dtype=dtype)  # (frames, C) after the activation
        # Running sums of the conv outputs and their squares over the prefix, for the
        # InstanceNorm statistics in O(1) per frame (float64 against cancellation).
        wide = _wide_dtype(device)
        self.sum = torch.zeros(c_out, device=device, dtype=wide)
        self.sum_sq = torch.zeros(c_out, device=device, dtype=wide)
        emb = decoder.decoder_linear_embedding.net
        self.emb_weight_t = emb.weight.detach().t().to(wide)  # (C, H)
        self.emb_bias = (emb.bias.detach() + decoder.decoder_pos_embedding.pe[0, 0]).to(wide)  # (H,)
        if norm.affine:
            self.emb_bias = self.emb_bias + emb.weight.detach().to(wide) @ norm.bias.detach().to(wide)
            self.norm_weight = norm.weight.detach().to(wide)
        else:
            self.norm_weight = None
        self.emb_bias = self.emb_bias.to(dtype)

    def push(self, i: int, codes: torch.Tensor) -> torch.Tensor:
        """Codes of frame i (fq*zd,) -> decoder hidden state of frame i (1, H), prefix 0..i."""
        dec, p = self.dec, self.pad
        x = codes.view(1, -1)
        if hasattr(dec, "decoder_linear_embedding_pre"):
            x = dec.decoder_linear_embedding_pre(x)
        if i == 0:
            self.padded[: 2 * p + 1] = x
        else:
            self.padded[i + p : i + 2 * p + 1] = x
        # conv outputs of frames lo..i: the windows are padded rows lo.. lo + 2p, one row apart
        lo = max(0, i - p)
        c_in = self.padded.shape[1]
        windows = self.padded.as_strided((i - lo + 1, (2 * p + 1) * c_in), (c_in, 1), lo * c_in)
        fresh = self.act(torch.addmm(self.conv_bias, windows, self.conv_weight))  # (n, C)
        stale = self.conv_out[lo:i].to(self.sum.dtype)  # outputs the new frame changes
        self.conv_out[lo : i + 1] = fresh
        fresh = fresh.to(self.sum.dtype)
        self.sum += fresh.sum(0) - stale.sum(0)
        self.sum_sq += (fresh * fresh).sum(0) - (stale * stale).sum(0)
        # InstanceNorm over the whole prefix, then the linear embedding and positional row:
        # h = ((c - mean) * scale) E^T + bias, with the per-channel scale folded into E^T
        mean = self.sum / (i + 1)
        var = (self.sum_sq / (i + 1) - mean * mean).clamp_min(0.0)
        scale = torch.rsqrt(var + self.norm.eps)
        if self.norm_weight is not None:
            scale = scale * self.norm_weight
        weight = (self.emb_weight_t * scale.unsqueeze(1)).to(self.conv_out.dtype)
        start = 0 if self.window is None else max(0, i + 1 - self.window)
        centred = self.conv_out[start : i + 1] - mean.to(self.conv_out.dtype)
        h = torch.addmm(self.emb_bias, centred, weight)  # (n, H)
        return dec.decoder_transformer.last_frame(h)


def prefix_decodes(autoencoder, codes: torch.Tensor) -> torch.Tensor:
    """Each frame decoded from the codes up to it alone, as exact mode feeds it back.

    codes (1, T, fq, zd) -> (1, T, V*3): frame i of ``decode(codes[:, :i + 1])``.
    Training uses it to show the predictor the frames inference will feed it,
    which differ from the whole-clip decode most in the first second (a short
    prefix's InstanceNorm statistics exaggerate small motions).
    """
    t = codes.shape[1]
    feedback = _FeedbackDecoder(autoencoder.decoder, t, None, codes.device, codes.dtype)
    hidden = torch.cat([feedback.push(i, codes[0, i]) for i in range(t)])  # (T, H)
    return autoencoder.decoder.vertice_map_reverse(hidden).unsqueeze(0)


def decode_windowed(autoencoder, codes: torch.Tensor, window: int, overlap: int) -> torch.Tensor:
    """Stage-1 decode of codes (1, T, fq, zd) -> (1, T, V*3).

    Up to ``window`` frames in one pass (exact). Longer sequences are decoded in
    windows that share ``overlap`` frames, cross-faded linearly.
    """
    t = codes.shape[1]
    if t <= window:
        return autoencoder.decode(codes)
    overlap = max(1, min(overlap, window // 2))
    step = window - overlap
    out = None
    weight = None
    for start in range(0, t, step):
        stop = min(start + window, t)
        start = max(0, stop - window)
        part = autoencoder.decode(codes[:, start:stop])  # (1, w, V*3)
        w = torch.ones(stop - start, device=codes.device, dtype=part.dtype)
        if start > 0:
            w[:overlap] = torch.linspace(0, 1, overlap + 2, device=codes.device, dtype=part.dtype)[1:-1]
        if stop < t:
            w[-overlap:] = torch.linspace(1, 0, overlap + 2, device=codes.device, dtype=part.dtype)[1:-1]
        if out is None:
            out = torch.zeros(1, t, part.shape[-1], device=codes.device, dtype=part.dtype)
            weight = torch.zeros(t, device=codes.device, dtype=part.dtype)
        out[:, start:stop] += part * w.view(1, -1, 1)
        weight[start:stop] += w
        if stop == t:
            break
    return out.div_(weight.view(1, -1, 1))  # in place: at 10 min of BIWI the output alone is 4 GB


@torch.inference_mode()  # the loop is thousands of small steps: no autograd bookkeeping
def generate_motion(
    model,
    audio_features: torch.Tensor,
    frames: int,
    style: torch.Tensor,
    options: DecodeOptions = DecodeOptions(),
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    timings: dict | None = None,
) -> torch.Tensor:
    """The autoregressive loop.

    audio_features (1, frames * feats_per_frame, hidden) from the audio encoder,
    style (F,) a style embedding. Returns motion (frames, V*3), template not added.
    ``timings``, when given, receives seconds per stage: predictor, feedback
    (stage-1 decode of the fed-back frame) and final (decode of the whole clip).
    """
    ae = model.autoencoder
    clock = _Clock(timings, audio_features.device)
    memory = model.audio_feature_map(audio_features)  # (1, S, F)
    windowed = options.feedback_window is not None and options.attention_window is not None
    static = options.static if options.static is not None else memory.device.type == "cuda"
    if windowed and static:
        from .graphed import StaticFastLoop

        loop = StaticFastLoop(model, memory, frames, style, options.feedback_window, options.attention_window)
        clock.lap(None)
        codes = loop.run(frames, progress, cancel)
        clock.lap("loop")
        _check_cancel(cancel)
        motion = decode_windowed(ae, codes, options.final_window, options.final_overlap)
        clock.lap("final")
        return motion[0]
    codes, _ = _autoregressive_loop(model, memory, frames, style, options, progress, cancel, clock)
    _check_cancel(cancel)
    motion = decode_windowed(ae, codes, options.final_window, options.final_overlap)
    clock.lap("final")
    return motion[0]


def _autoregressive_loop(model, memory, frames, style, options, progress=None, cancel=None, clock=None,
                         keep_feedback: bool = False):
    """The loop proper (eager): codes (1, frames, fq, zd) and, with ``keep_feedback``, the
    fed-back frames' decoder states (frames, H) (the last one computed only then)."""
    cfg = model.cfg
    ae = model.autoencoder
    fq, zd = cfg.vq.face_quan_num, cfg.vq.zquant_dim
    predictor = _CachedPredictor(model, memory, frames, options.attention_window)
    feedback = _FeedbackDecoder(ae.decoder, frames, options.feedback_window, memory.device, memory.dtype)
    fb_weight, fb_bias = feedback_map(model)
    codes = torch.zeros(1, frames, fq, zd, device=memory.device, dtype=memory.dtype)
    states = [] if keep_feedback else None
    style = style.view(1, -1)
    token = style  # step 0 input: the style embedding
    ppe = model.PPE.rows(torch.arange(frames, device=memory.device))  # (frames, F)
    clock = clock or _Clock(None, memory.device)  # no timings: laps are no-ops
    clock.lap(None)
    for i in range(frames):
        _check_cancel(cancel)
        z = model.feat_map(predictor.step(i, token + ppe[i])).view(1, 1, fq, zd)
        codes[:, i : i + 1], _ = ae.quantize(z)
        clock.lap("predictor")
        if i < frames - 1 or keep_feedback:
            last = feedback.push(i, codes[0, i])
            token = F.linear(last, fb_weight, fb_bias) + style
            if keep_feedback:
                states.append(last)
            clock.lap("feedback")
        if progress is not None:
            progress(i + 1, frames)
    return codes, (torch.cat(states) if keep_feedback else None)


@torch.no_grad()
def rollout_feedback(model, audio_features: torch.Tensor, frames: int, style: torch.Tensor) -> torch.Tensor:
    """What exact-mode inference feeds back when it runs free: frame i decoded from the
    model's own codes 0..i, (1, frames, V*3). Training shows the predictor these frames
    (scheduled sampling on rollouts), which is the history it has at inference.

    audio_features (1, frames * feats_per_frame, hidden), style (F,).
    """
    memory = model.audio_feature_map(audio_features)
    _, states = _autoregressive_loop(model, memory, frames, style, DecodeOptions.exact(), keep_feedback=True)
    return model.autoencoder.decoder.vertice_map_reverse(states).unsqueeze(0)


class _Clock:
    """Accumulates wall time per stage into a dict (no-op without one)."""

    def __init__(self, timings: dict | None, device: torch.device):
        self.timings = timings
        self.cuda = device.type == "cuda"
        self.last = time.perf_counter()

    def lap(self, stage: str | None) -> None:
        if self.timings is None:
            return
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        if stage is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now
