"""Training loops for both CodeTalker stages, with checkpoints, resume and logs.

Stage 1 (the VQ motion prior): reconstruct motion through the codebook;
L1 reconstruction + codebook loss + 0.25 * commitment, dead codes restarted
from encoder outputs. Stage 2 (the predictor): teacher forcing, the stage-1
autoencoder and the speech encoder frozen; loss = MSE(decoded motion) +
MSE(predicted codes vs. the codes of the true motion), as the paper. Optional
scheduled sampling feeds back a share of the model's own predictions instead
of true frames (a first, gradient-free pass makes them, decoded either whole or
frame by frame from their prefix as inference feeds them back), which keeps free
running inference from drifting. Optional style mixing (both stages) shows a
share of the clips with a random blend of the synthetic speakers' styles, whose
motion the corpus's rig coefficients give exactly (:class:`.data.RigMotion`),
so that blended style sliders are not outside what the model was trained on.

Units: motion is trained divided by one scalar ``motion_scale`` (its RMS
over the training set), so that the network sees numbers near 1 whatever the
dataset's units. :func:`fold_motion_scale` then folds the scale into the
first and last motion layers (``vertice_mapping``, ``vertice_map_reverse``,
``vertice_map``), which is exact, so the saved model reads and writes
motion in the dataset's units like any CodeTalker checkpoint.

Both stages train with batch size 1 (one clip per step), like the published
code: the stage-1 positional encoding quirk makes batch items differ.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.audio import load_audio
from ..core.audio_encoder import frame_count, to_feature_rate
from ..core.config import WAV2VEC2_FEATURE_RATE, ModelConfig
from ..core.inference import prefix_decodes, rollout_feedback
from ..core.predictor import CodeTalker
from ..core.style import StyleSpec, style_weights
from ..core.vqvae import VQAutoEncoder
from .corpus import feature_path, save_speech_features
from .data import Clip, DataConfig, clips, features_dir


@dataclass(frozen=True)
class StageOptions:
    epochs: int = 20
    lr: float = 1e-3
    lr_final: float = 5e-5  # cosine decay to this
    warmup: int = 200  # steps of linear warm-up
    weight_decay: float = 0.0
    max_frames: int = 300  # random crop of longer clips
    seed: int = 1
    threads: int = 0  # torch CPU threads, 0 = default
    beta: float = 0.25  # stage 1 commitment weight
    reg_weight: float = 1.0  # stage 2 code regression weight
    feature_versions: int = 3  # stage 2: clean + augmented feature copies per clip
    # Stage 2: share of fed-back frames replaced by the model's own (detached)
    # prediction, against the drift of free-running inference (exposure bias).
    scheduled_sampling: float = 0.0
    # Which own predictions: "full" (teacher-forced codes, the whole crop decoded at
    # once), "prefix" (teacher-forced codes, frame i decoded from codes 0..i alone,
    # as inference feeds back) or "rollout" (the model run free over the crop, as
    # at inference, and its fed-back frames: the history it really has then).
    sampling_decode: str = "full"
    # Share of training steps that show a clip with a random blend of the speakers'
    # styles (its motion re-articulated from the corpus's rig coefficients) instead
    # of its own speaker: the style sliders and the default, equal blend are then
    # things the model has seen. Needs a synthetic corpus (rig coefficients).
    style_mixing: float = 0.0

    def __post_init__(self):
        if self.sampling_decode not in ("full", "prefix", "rollout"):
            raise ValueError(f"sampling_decode must be 'full', 'prefix' or 'rollout', not {self.sampling_decode!r}")


def training_device() -> torch.device:
    """CUDA when there is one (training is much faster there); the result runs anywhere.

    On the CPU, subnormal floats are flushed to zero: as training settles, tiny
    gradients otherwise make the backward pass many times slower.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_flush_denormal(True)
    return torch.device("cpu")


def _log(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def _lr(opts: StageOptions, step: int, total: int) -> float:
    warm = min(1.0, (step + 1) / max(1, opts.warmup))
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))
    return warm * (opts.lr_final + (opts.lr - opts.lr_final) * cos)


def motion_scale(train: list[Clip], limit: int = 200) -> float:
    """RMS of the training motion (displacements), over up to ``limit`` clips."""
    acc, n = 0.0, 0
    for c in train[:: max(1, len(train) // limit)]:
        m = c.motion().astype(np.float64)
        acc += float((m**2).sum())
        n += m.size
    return math.sqrt(acc / max(n, 1))


def draw_style(subjects: tuple[str, ...], own: str, mixing: float, rng: np.random.Generator) -> dict[str, float]:
    """The style a training clip is shown with (speaker -> weight, summing to 1).

    Its own speaker, or with probability ``mixing`` a blend of 1 to all
    ``subjects`` chosen at random, with Dirichlet weights whose concentration
    is log-uniform in [0.3, 10]: from nearly one speaker to nearly equal shares.
    With ``mixing`` 0 it draws nothing from ``rng``.
    """
    if mixing <= 0 or rng.random() >= mixing:
        return {own: 1.0}
    k = int(rng.integers(1, len(subjects) + 1))
    chosen = rng.choice(len(subjects), size=k, replace=False)
    weights = rng.dirichlet(np.full(k, math.exp(rng.uniform(math.log(0.3), math.log(10.0)))))
    return {subjects[i]: float(w) for i, w in zip(chosen, weights)}


def style_vector(subjects: tuple[str, ...], style: StyleSpec) -> torch.Tensor:
    """Style weights over ``subjects`` (n,) for CodeTalker.style_embedding, as the add-on makes them
    (core.style.style_weights: None is all subjects equally; an unknown subject is a StyleError)."""
    return torch.from_numpy(style_weights(style, subjects)).float()


def _check_mixing(train: list[Clip], opts: StageOptions) -> None:
    if opts.style_mixing > 0 and any(c.rig is None for c in train):
        raise SystemExit("style_mixing needs a synthetic corpus with rig coefficients (rig.npz, rig_coeffs/; "
                         "tools/make_corpus.py writes them); set it to 0 for other data")


def _crop(t: int, max_frames: int, rng: np.random.Generator) -> slice:
    if t <= max_frames:
        return slice(0, t)
    start = int(rng.integers(0, t - max_frames + 1))
    return slice(start, start + max_frames)


def _save(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _rng_state(rng: np.random.Generator) -> dict:
    """The random streams' positions, saved with each epoch so a resumed run goes on where it stopped
    (instead of replaying the first epochs' clip order, crops and draws)."""
    return {"numpy": json.dumps(rng.bit_generator.state), "torch": torch.get_rng_state()}


def _resume(path: str, modules: dict, opt, rng: np.random.Generator) -> tuple[int, int]:
    if not os.path.exists(path):
        return 0, 0
    ck = torch.load(path, map_location="cpu", weights_only=True)
    for name, mod in modules.items():
        mod.load_state_dict(ck[name])
    opt.load_state_dict(ck["optimizer"])
    if "rng" in ck:  # files from before the streams were saved resume with fresh ones
        rng.bit_generator.state = json.loads(ck["rng"]["numpy"])
        torch.set_rng_state(ck["rng"]["torch"])
    return int(ck["epoch"]), int(ck["step"])


# --------------------------------------------------------------------------- stage 1


def stage1_losses(vq: VQAutoEncoder, motion: torch.Tensor, beta: float):
    """(reconstruction L1, codebook, commitment, code indices) for motion (1, T, V*3)."""
    z = vq.encode(motion)  # (1, T, fq, zd)
    idx = vq.quantize.indices(z)
    e = vq.quantize.lookup(idx)
    zq = z + (e - z).detach()
    rec = vq.decode(zq)
    return F.l1_loss(rec, motion), F.mse_loss(e, z.detach()), beta * F.mse_loss(z, e.detach()), idx, z


def train_stage1(cfg: ModelConfig, data: DataConfig, opts: StageOptions, run_dir: str) -> str:
    """Train the VQ autoencoder; returns the checkpoint path (``stage1.pt`` in ``run_dir``)."""
    os.makedirs(run_dir, exist_ok=True)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    train, val = clips(data, "train"), clips(data, "val")
    if not train:
        raise SystemExit(f"no training clips found under {data.root}")
    _check_mixing(train, opts)
    scale = motion_scale(train)
    dev = training_device()
    vq = VQAutoEncoder(cfg.vq).to(dev)
    opt = torch.optim.AdamW(vq.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    last = os.path.join(run_dir, "stage1_last.pt")
    start, step = _resume(last, {"vq": vq}, opt, rng)
    log = os.path.join(run_dir, "stage1_log.jsonl")
    total = opts.epochs * len(train)
    _log(log, {"event": "start", "clips": len(train), "val": len(val), "motion_scale": scale, "epoch": start,
               "device": str(dev)})
    for epoch in range(start, opts.epochs):
        vq.train()
        t0, sums, usage = time.time(), np.zeros(3), np.zeros(cfg.vq.n_embed)
        pool = []  # encoder outputs, to restart dead codes from
        for i in rng.permutation(len(train)):
            c = train[i]
            m = c.motion(draw_style(cfg.subjects, c.subject, opts.style_mixing, rng))
            m = torch.from_numpy(m[_crop(len(m), opts.max_frames, rng)] / scale)[None].to(dev)
            for g in opt.param_groups:
                g["lr"] = _lr(opts, step, total)
            rec, cb, commit, idx, z = stage1_losses(vq, m, opts.beta)
            loss = rec + cb + commit
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vq.parameters(), 1.0)
            opt.step()
            step += 1
            sums += [rec.item(), cb.item(), commit.item()]
            usage += np.bincount(idx.flatten().cpu().numpy(), minlength=cfg.vq.n_embed)
            flat = z.detach().reshape(-1, cfg.vq.zquant_dim)
            pool.append(flat[torch.randint(len(flat), (8,))])
        dead = np.flatnonzero(usage == 0)
        if len(dead) and epoch < opts.epochs - 2:
            pool_t = torch.cat(pool)
            with torch.no_grad():
                vq.quantize.embedding.weight[torch.from_numpy(dead).to(dev)] = pool_t[
                    torch.randint(len(pool_t), (len(dead),), device=dev)
                ]
        val_rec = evaluate_stage1(vq, val, scale)
        _log(log, {"epoch": epoch + 1, "step": step, "rec_l1": sums[0] / len(train), "codebook": sums[1] / len(train),
                   "commit": sums[2] / len(train), "codes_used": int((usage > 0).sum()), "restarted": len(dead),
                   "val_rec_l1": val_rec, "lr": _lr(opts, step, total), "seconds": round(time.time() - t0, 1)})
        _save(last, {"vq": vq.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1, "step": step,
                     "motion_scale": scale, "rng": _rng_state(rng)})
    out = os.path.join(run_dir, "stage1.pt")
    _save(out, {"vq": {k: v.cpu() for k, v in vq.state_dict().items()}, "motion_scale": scale})
    return out


@torch.no_grad()
def evaluate_stage1(vq: VQAutoEncoder, val: list[Clip], scale: float) -> float:
    vq.eval()
    total = 0.0
    dev = next(vq.parameters()).device
    for c in val:
        m = torch.from_numpy(c.motion() / scale)[None].to(dev)
        rec, _, _ = vq(m)
        total += F.l1_loss(rec, m).item()
    return total / max(1, len(val))


# --------------------------------------------------------------------------- stage 2


def clip_features(clip: Clip, folder: str, version: int, encoder) -> np.ndarray:
    """Cached 50 Hz features of one clip (version 0 clean); computed and cached if missing."""
    path = feature_path(folder, clip.name, version)
    if not os.path.exists(path):
        if version != 0:
            return clip_features(clip, folder, 0, encoder)
        os.makedirs(folder, exist_ok=True)
        save_speech_features(encoder, load_audio(clip.wav), path)
    return np.load(path).astype(np.float32)


def frame_features(feats50: torch.Tensor, frames: int, cfg: ModelConfig) -> torch.Tensor:
    """50 Hz features (1, N, C) -> ``feats_per_frame`` per motion frame (1, frames * r, C), the
    last one repeated where the audio is a little short."""
    r = cfg.timing.feats_per_frame
    feats = to_feature_rate(feats50, frames, cfg.timing)
    if feats.shape[1] < frames * r:
        feats = F.pad(feats.transpose(1, 2), (0, frames * r - feats.shape[1]), mode="replicate").transpose(1, 2)
    return feats


def predict_codes(
    model: CodeTalker,
    motion: torch.Tensor,
    feats50: torch.Tensor,
    style: torch.Tensor,
    inputs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Teacher-forced code prediction for motion (1, T, V*3) (normalised units) and 50 Hz features (1, N, C).

    ``inputs``: the motion fed back (default: the true motion; scheduled
    sampling passes a mix of true and predicted frames).
    Returns the predicted codes before quantisation, (1, T, fq, zd).
    """
    cfg = model.cfg
    t = motion.shape[1]
    memory = model.audio_feature_map(frame_features(feats50, t, cfg))
    emb = style.view(1, 1, -1)
    # Step 0 sees the style embedding alone (as at inference), step i frame i-1.
    fed = motion if inputs is None else inputs
    tokens = torch.cat([emb, model.vertice_map(fed[:, :-1]) + emb], dim=1)  # (1, T, F)
    return model.predictor_step_full(model.PPE(tokens), memory).view(1, t, cfg.vq.face_quan_num, cfg.vq.zquant_dim)


def stage2_forward(
    model: CodeTalker,
    motion: torch.Tensor,
    feats50: torch.Tensor,
    style: torch.Tensor,
    inputs: torch.Tensor | None = None,
):
    """:func:`predict_codes`, decoded, with the true motion's codes for the regression loss.

    Returns (decoded motion (1, T, V*3), predicted codes (1, T, fq, zd), true codes (1, T, fq, zd)).
    """
    pred = predict_codes(model, motion, feats50, style, inputs)
    ae = model.autoencoder
    with torch.no_grad():
        z_gt = ae.encode(motion)
        z_gt = ae.quantize.lookup(ae.quantize.indices(z_gt))
    zq, _ = ae.quantize(pred)  # straight-through
    return ae.decode(zq), pred, z_gt


def sampled_inputs(model: CodeTalker, motion, feats50, style, opts: StageOptions) -> torch.Tensor:
    """The model's own motion for scheduled sampling (gradient-free), decoded as ``opts.sampling_decode`` says."""
    ae = model.autoencoder
    with torch.no_grad():
        if opts.sampling_decode == "rollout":
            return rollout_feedback(model, frame_features(feats50, motion.shape[1], model.cfg), motion.shape[1], style)
        zq, _ = ae.quantize(predict_codes(model, motion, feats50, style))
        return prefix_decodes(ae, zq) if opts.sampling_decode == "prefix" else ae.decode(zq)


def train_stage2(
    cfg: ModelConfig,
    data: DataConfig,
    opts: StageOptions,
    run_dir: str,
    stage1_path: str,
    encoder_state: dict,
    init_from: str | None = None,
    name: str = "stage2",
) -> str:
    """Train the predictor on top of a trained stage 1; returns ``<name>.pt`` in ``run_dir``.

    ``init_from``: a finished stage-2 file to start from (fine-tuning), with
    its own ``<name>_last.pt`` / ``<name>_log.jsonl``.
    """
    os.makedirs(run_dir, exist_ok=True)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed + 1)
    s1 = torch.load(stage1_path, map_location="cpu", weights_only=True)
    scale = float(s1["motion_scale"])
    dev = training_device()
    model = CodeTalker(cfg)
    model.autoencoder.load_state_dict(s1["vq"])
    model.audio_encoder.load_state_dict(encoder_state)
    if init_from:
        model.load_state_dict(torch.load(init_from, map_location="cpu", weights_only=True)["model"])
    model.to(dev)
    for p in list(model.autoencoder.parameters()) + list(model.audio_encoder.parameters()):
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    last = os.path.join(run_dir, f"{name}_last.pt")
    trainable = {k: v for k, v in model.named_children() if k not in ("autoencoder", "audio_encoder")}
    start, step = _resume(last, trainable, opt, rng)
    train, val = clips(data, "train"), clips(data, "val")
    _check_mixing(train, opts)
    folder = features_dir(data)
    log = os.path.join(run_dir, f"{name}_log.jsonl")
    total = opts.epochs * len(train)
    _log(log, {"event": "start", "clips": len(train), "val": len(val), "motion_scale": scale, "epoch": start,
               "device": str(dev)})
    for epoch in range(start, opts.epochs):
        model.train()
        model.autoencoder.eval()
        model.audio_encoder.eval()
        t0, sums = time.time(), np.zeros(2)
        for i in rng.permutation(len(train)):
            c = train[i]
            blend = draw_style(cfg.subjects, c.subject, opts.style_mixing, rng)
            m = c.motion(blend)
            feats = clip_features(c, folder, int(rng.integers(opts.feature_versions)), model.audio_encoder)
            m, feats = _aligned_crop(m, feats, cfg, opts.max_frames, rng)
            motion = torch.from_numpy(m / scale)[None].to(dev)
            style = model.style_embedding(style_vector(cfg.subjects, blend).to(dev))
            for g in opt.param_groups:
                g["lr"] = _lr(opts, step, total)
            feats_t = torch.from_numpy(feats)[None].to(dev)
            inputs = None
            if opts.scheduled_sampling > 0:
                first = sampled_inputs(model, motion, feats_t, style, opts)
                own = torch.rand(1, motion.shape[1], 1, device=dev) < opts.scheduled_sampling
                inputs = torch.where(own, first, motion)
            rec, pred, z_gt = stage2_forward(model, motion, feats_t, style, inputs)
            loss_motion = F.mse_loss(rec, motion)
            loss_reg = F.mse_loss(pred, z_gt)
            loss = loss_motion + opts.reg_weight * loss_reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            sums += [loss_motion.item(), loss_reg.item()]
        val_motion = evaluate_stage2(model, val, folder, scale)
        _log(log, {"epoch": epoch + 1, "step": step, "motion_mse": sums[0] / len(train), "reg_mse": sums[1] / len(train),
                   "val_motion_mse": val_motion, "lr": _lr(opts, step, total), "seconds": round(time.time() - t0, 1)})
        _save(last, {**{k: v.state_dict() for k, v in trainable.items()}, "optimizer": opt.state_dict(),
                     "epoch": epoch + 1, "step": step, "rng": _rng_state(rng)})
    out = os.path.join(run_dir, f"{name}.pt")
    _save(out, {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "motion_scale": scale})
    return out


def _aligned_crop(m: np.ndarray, feats: np.ndarray, cfg: ModelConfig, max_frames: int, rng) -> tuple:
    """Crop motion (T, D) and 50 Hz features (N, C) to the same stretch of time."""
    fps, rate = cfg.timing.fps, WAV2VEC2_FEATURE_RATE
    t = min(len(m), frame_count(len(feats), cfg.timing))
    m = m[:t]
    sl = _crop(t, max_frames, rng)
    a = int(round(sl.start / fps * rate))
    b = min(len(feats), max(a + 1, int(round(sl.stop / fps * rate))))
    return m[sl], feats[a:b]


@torch.no_grad()
def evaluate_stage2(model: CodeTalker, val: list[Clip], folder: str, scale: float) -> float:
    model.eval()
    total = 0.0
    rng = np.random.default_rng(0)
    dev = model.device
    for c in val:
        m, feats = _aligned_crop(c.motion(), clip_features(c, folder, 0, model.audio_encoder), model.cfg, 10**9, rng)
        motion = torch.from_numpy(m / scale)[None].to(dev)
        # a held-out speaker (real data's validation subjects) is shown the default style (all equally)
        own = c.subject if c.subject in model.cfg.subjects else None
        style = model.style_embedding(style_vector(model.cfg.subjects, own).to(dev))
        rec, _, _ = stage2_forward(model, motion, torch.from_numpy(feats)[None].to(dev), style)
        total += F.mse_loss(rec, motion).item()
    return total / max(1, len(val))


# --------------------------------------------------------------------------- export


@torch.no_grad()
def fold_motion_scale(model: CodeTalker, scale: float) -> None:
    """Make a model trained on motion / scale read and write motion in dataset units (exact)."""
    enc_in = model.autoencoder.encoder.vertice_mapping[0]
    enc_in.weight.mul_(1.0 / scale)
    out = model.autoencoder.decoder.vertice_map_reverse
    out.weight.mul_(scale)
    if out.bias is not None:
        out.bias.mul_(scale)
    model.vertice_map.weight.mul_(1.0 / scale)
