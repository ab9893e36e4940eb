"""The public entry points: load a model, animate a clip."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from . import checkpoint
from .audio import SAMPLE_RATE, SilenceGate, is_silent, load_audio, rest_gain, to_mono_16k
from .audio_encoder import Chunking, conv_feature_count, encode_audio, frame_count, normalise
from .config import ModelConfig, load_config
from .device import resolve_device
from .errors import AudioError, ConfigError, StyleError
from .inference import CancelFn, DecodeOptions, ProgressFn, generate_motion
from .mesh import as_vertices, check_vertex_count, load_template
from .style import BLENDS, StyleSpec, style_weights

MODES = ("auto", "exact", "fast")
# 'auto' decodes exactly up to this many frames and in fast mode beyond: the
# published model's tables end at 600 frames (20 s at 30 fps), and exact
# decoding costs time quadratic in the length (a minute of FLAME speech with the
# bundled model: about 49 s exact against 5 s fast on a 2-core CPU).
AUTO_EXACT_FRAMES = 600
# The default silence gate: the face rests where the audio is 22 dB under the speech for over 0.4 s.
DEFAULT_GATE = SilenceGate()


def resolve_mode(mode: str, frames: int) -> str:
    """'exact' or 'fast': what ``mode`` ('auto', 'exact' or 'fast') means for a clip of ``frames`` frames."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; use auto, exact or fast")
    if mode == "auto":
        return "exact" if frames <= AUTO_EXACT_FRAMES else "fast"
    return mode


def decode_options(mode: str | DecodeOptions, frames: int) -> DecodeOptions:
    """The decode options of ``mode`` ('auto', 'exact' or 'fast', or options) for ``frames`` frames."""
    if isinstance(mode, DecodeOptions):
        return mode
    return DecodeOptions.exact() if resolve_mode(mode, frames) == "exact" else DecodeOptions.fast()


def load_model(
    *,
    config: str | os.PathLike | ModelConfig | None = None,
    stage1: str | os.PathLike | None = None,
    stage2: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
):
    """Load a model: our safetensors file (``model``), or the published pair.

    For the published pair, ``config`` is the published YAML (or our JSON or a
    ModelConfig). A YAML's ``vqvae_pretrained_path`` stands in for a missing
    ``stage1``.
    """
    if model is not None:
        return checkpoint.load_model_file(model)
    if config is None:
        raise ConfigError("a config is needed with published checkpoints (--config)")
    if isinstance(config, ModelConfig):
        cfg, paths = config, {}
    else:
        cfg, paths = load_config(config)
    stage1 = stage1 or paths.get("vqvae_pretrained_path")
    if stage1 is None:
        raise ConfigError("no stage-1 checkpoint given (--stage1) and the config names none")
    if stage2 is None:
        raise ConfigError("no stage-2 checkpoint given (--stage2)")
    return checkpoint.load_published(cfg, stage1, stage2)


@dataclass
class Animation:
    """Vertex positions (frames, V, 3) at ``fps``, with what produced them."""

    vertices: np.ndarray
    fps: float
    info: dict = field(default_factory=dict)


def _as_cancel(cancel) -> CancelFn | None:
    if cancel is None:
        return None
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


def _samples(audio) -> np.ndarray:
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio)
    if isinstance(audio, tuple) and len(audio) == 2:
        return to_mono_16k(audio[0], int(audio[1]))
    return to_mono_16k(np.asarray(audio), SAMPLE_RATE)


def animate(
    model,
    audio,
    template,
    style: StyleSpec = None,
    *,
    device: str | torch.device | None = "auto",
    mode: str | DecodeOptions = "auto",
    progress: ProgressFn | None = None,
    cancel: CancelFn | threading.Event | None = None,
    chunking: Chunking = Chunking(),
    gate: SilenceGate | None = DEFAULT_GATE,
    blend: str = "model",
) -> Animation:
    """Animate ``template`` speaking ``audio``.

    audio: a file path, 16 kHz mono samples, or (samples, sample_rate).
    template: a mesh file path or (V, 3) / (V*3,) positions.
    style: None (all subjects blended equally), a subject name or index,
        {name: weight}, or a weight vector over the subjects.
    device: 'auto' (CUDA, MPS, CPU), or a device; the model is moved there.
    mode: 'exact' (the reference algorithm), 'fast' (bounded windows) or
        'auto' (exact up to ``AUTO_EXACT_FRAMES`` frames, fast beyond); the
        mode used is in ``info["mode"]``.
    gate: the silence gate (``DEFAULT_GATE``): in the clip's silences the
        motion fades to the template at rest (the model reacts to breaths and
        room noise there). None gives the model's motion as it is, as the
        published algorithm does. The seconds held at rest are in
        ``info["rest_seconds"]``.
    blend: 'model' (one run with the blended style embedding) or 'motion'
        (one run per style with a weight, the motions mixed by weight; see
        ``BLENDS``). A single style gives the same motion either way.
    progress(done, total) is called per frame; cancel() returning True (or a
    set threading.Event) stops within one frame by raising Cancelled.

    Pure silence gives the template, still, for the clip's length.
    """
    cfg: ModelConfig = model.cfg
    if isinstance(mode, str):
        resolve_mode(mode, 0)  # an unknown mode fails before any work
    if blend not in BLENDS:
        raise StyleError(f"unknown style blend {blend!r}: use one of {', '.join(BLENDS)}")
    verts = load_template(template) if isinstance(template, (str, os.PathLike)) else as_vertices(template)
    check_vertex_count(verts, cfg.num_vertices)
    weights = style_weights(style, cfg.subjects)
    samples = _samples(audio)
    info = {"mode": mode if isinstance(mode, str) else "custom", "style": dict(zip(cfg.subjects, weights.tolist())),
            "blend": blend, "seconds": samples.size / SAMPLE_RATE}

    if is_silent(samples):
        n_feat = conv_feature_count(samples.size, model.audio_encoder)
        frames = frame_count(max(n_feat, 0), cfg.timing)
        if frames < 1:
            raise AudioError("the audio is too short for a single motion frame")
        if progress is not None:
            progress(frames, frames)
        info["silent"] = True
        return Animation(np.repeat(verts[None], frames, axis=0), cfg.fps, info)

    dev = resolve_device(device)
    if model.device != dev:
        model.to(dev)
    cancel_fn = _as_cancel(cancel)
    with torch.inference_mode():  # no autograd bookkeeping at all (faster per step than no_grad)
        feats, frames = encode_audio(model.audio_encoder, normalise(torch.from_numpy(samples)), cfg.timing, chunking)
        if isinstance(mode, str):
            info["mode"] = resolve_mode(mode, frames)
        options = decode_options(mode, frames)
        if blend == "model":  # (share of the motion, style weights) per run
            runs = [(1.0, weights)]
        else:  # each style with a weight on its own; the motions are mixed below
            runs = [(float(weights[k]), np.eye(len(weights))[k]) for k in np.flatnonzero(weights)]
        out = None
        for n, (w, run_weights) in enumerate(runs):
            emb = model.style_embedding(torch.from_numpy(run_weights).to(dev))
            run_progress = None if progress is None else (  # one count over all runs
                lambda done, total, n=n: progress(n * total + done, len(runs) * total))
            motion = generate_motion(model, feats, frames, emb, options, run_progress, cancel_fn)
            motion = motion.float().cpu().numpy().reshape(frames, -1, 3)
            if w != 1.0:
                motion *= w  # in place: long clips' motion is gigabytes
            if out is None:
                out = motion
            else:
                out += motion
    if gate is not None:
        gain = rest_gain(samples, gate, frames, cfg.fps)
        info["rest_seconds"] = float(np.count_nonzero(gain == 0.0)) / cfg.fps
        if gain.min() < 1.0:
            out *= gain[:, None, None]
    out += verts[None]  # in place: long clips' vertices are gigabytes
    info["device"] = str(dev)
    return Animation(out, cfg.fps, info)
