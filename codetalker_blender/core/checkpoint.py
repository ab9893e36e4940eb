"""Reading and writing model weights.

Published checkpoints: two ``torch.save`` files (stage 1, stage 2) whose
weights sit under ``state_dict``. They are read with
``torch.load(weights_only=True)``: anything that is not plain tensors and
containers is refused. Names are normalised (``module.`` prefix, torch 1.9
weight-norm names), the stage-1 weights are merged under ``autoencoder.``,
and every key and shape is checked against the model before loading.

Our format: one safetensors file whose metadata carries the model config as
JSON (``codetalker_config``), plus the same JSON beside it for people to read.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping

import torch

from . import config as config_mod
from .config import ModelConfig
from .errors import CheckpointError, ConfigError

# torch 1.9 weight-norm names (published files) -> current parametrisation names.
LEGACY_NAMES = {
    ".weight_g": ".parametrizations.weight.original0",
    ".weight_v": ".parametrizations.weight.original1",
}
STAGE1_PREFIXES = ("encoder.", "decoder.", "quantize.")
STAGE2_PREFIXES = ("audio_encoder.", "transformer_decoder.", "learnable_style_emb.", "feat_map.")
CONFIG_METADATA_KEY = config_mod.CONFIG_METADATA_KEY


def _to_current_name(key: str) -> str:
    for old, new in LEGACY_NAMES.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def to_legacy_name(key: str) -> str:
    """Inverse of the weight-norm renaming: current name -> published name."""
    for old, new in LEGACY_NAMES.items():
        if key.endswith(new):
            return key[: -len(new)] + old
    return key


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a published ``.pth.tar`` file, names normalised."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "can still be loaded" in text:
            raise CheckpointError(
                f"refusing to load {path}: it holds pickled Python objects, not only tensors"
            ) from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (unpickling failed)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({first})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state_dict of tensors")
    out = {}
    for key, value in obj.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        out[_to_current_name(key)] = value
    return out


def checkpoint_kind(state: Mapping[str, torch.Tensor]) -> str:
    """'stage1', 'stage2' or 'unknown', from the key names."""
    if any(k.startswith(STAGE2_PREFIXES) for k in state):
        return "stage2"
    if any(k.startswith(STAGE1_PREFIXES) for k in state):
        return "stage1"
    return "unknown"


_KIND_WORDS = {
    "stage1": "a stage-1 (VQ autoencoder) checkpoint",
    "stage2": "a stage-2 (speech predictor) checkpoint",
    "unknown": "not a CodeTalker checkpoint",
}


def merge_published(stage1: Mapping[str, torch.Tensor], stage2: Mapping[str, torch.Tensor],
                    stage1_name: str = "stage 1", stage2_name: str = "stage 2") -> dict[str, torch.Tensor]:
    """One state dict for :class:`CodeTalker` from the two published files."""
    for state, want, name in ((stage1, "stage1", stage1_name), (stage2, "stage2", stage2_name)):
        kind = checkpoint_kind(state)
        if kind != want:
            raise CheckpointError(
                f"{name} was given as the {want[:5]}-{want[5:]} file but is {_KIND_WORDS[kind]}"
            )
    merged = {k: v for k, v in stage2.items() if not k.startswith("autoencoder.")}
    merged.update({"autoencoder." + k: v for k, v in stage1.items()})
    return merged


def _summarise(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise CheckpointError unless ``state`` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    wrong = [
        f"{k} {tuple(state[k].shape)} (model: {tuple(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_summarise(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_summarise(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches: {_summarise(wrong, 3)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model config: " + "; ".join(problems))


def build_empty(cfg: ModelConfig):
    """A :class:`CodeTalker` on the meta device: structure only, no memory."""
    from .predictor import CodeTalker

    with torch.device("meta"):
        return CodeTalker(cfg)


def load_into_empty(cfg: ModelConfig, state: Mapping[str, torch.Tensor], source: str):
    """Build the model for ``cfg`` and give it ``state`` (checked strictly), in eval mode on CPU."""
    model = build_empty(cfg)
    check_state_dict(model, state, source)
    expected = model.state_dict()
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def load_published(cfg: ModelConfig, stage1_path: str | os.PathLike, stage2_path: str | os.PathLike):
    """Model from the two published ``.pth.tar`` files."""
    s1 = read_torch_state_dict(stage1_path)
    s2 = read_torch_state_dict(stage2_path)
    merged = merge_published(s1, s2, os.fspath(stage1_path), os.fspath(stage2_path))
    return load_into_empty(cfg, merged, f"{os.fspath(stage1_path)} + {os.fspath(stage2_path)}")


# --------------------------------------------------------------------------- our format


def save_model(model, path: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
    """Write ``model`` as safetensors with its config (metadata and sidecar JSON).

    ``dtype`` (e.g. torch.float16) stores floating-point tensors smaller; they
    are cast back to the model's float32 on loading.
    """
    from safetensors.torch import save_file

    path = os.fspath(path)
    text = config_mod.to_json(model.cfg)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata={CONFIG_METADATA_KEY: text})
    os.chmod(tmp, 0o644)  # safetensors creates it owner-only; a model file is meant to be shared
    os.replace(tmp, path)
    with open(config_mod.sidecar_path(path), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


def read_safetensors_config(path: str | os.PathLike) -> ModelConfig:
    """The config stored with one of our safetensors models."""
    try:
        return config_mod.config_from_model_file(path)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def load_model_file(path: str | os.PathLike):
    """Model from one of our safetensors files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg = read_safetensors_config(path)
    try:
        state = load_file(os.fspath(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{os.fspath(path)} is not a readable safetensors model ({exc})") from None
    return load_into_empty(cfg, state, os.fspath(path))


def describe_file(path: str | os.PathLike) -> dict:
    """What a checkpoint, model or config file holds, for ``codetalker info``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"file not found: {path}")
    lower = path.lower()
    if lower.endswith((".yaml", ".yml", ".json")):
        cfg, paths = config_mod.load_config(path)
        return {"file": path, "kind": "config", **_describe_config(cfg), **({"paths": paths} if paths else {})}
    if lower.endswith(".safetensors"):
        cfg = read_safetensors_config(path)
        return {"file": path, "kind": "model (safetensors)", **_describe_config(cfg)}
    state = read_torch_state_dict(path)
    kind = checkpoint_kind(state)
    try:
        return _describe_state(path, state, kind)
    except (KeyError, IndexError):
        return {"file": path, "kind": "not a CodeTalker checkpoint (unexpected layout)", "tensors": len(state)}


def _describe_state(path: str, state, kind: str) -> dict:
    info = {"file": path, "kind": _KIND_WORDS[kind], "tensors": len(state),
            "parameters": int(sum(v.numel() for v in state.values()))}
    if kind == "stage1":
        in_dim = state["encoder.vertice_mapping.0.weight"].shape[1]
        hidden = state["encoder.vertice_mapping.0.weight"].shape[0]
        n_embed, zd = state["quantize.embedding.weight"].shape
        post = state.get("encoder.encoder_linear_embedding_post.net.weight")
        code_dim = post.shape[0] if post is not None else hidden
        layers = len({k.split(".")[3] for k in state if k.startswith("encoder.encoder_transformer.net.")}) // 2
        info.update(vertices=in_dim // 3, variant=_variant(in_dim // 3), hidden_size=hidden,
                    layers=layers, codebook=f"{n_embed} x {zd}", codes_per_frame=code_dim // zd)
    elif kind == "stage2":
        vm = state["vertice_map.weight"]
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer_decoder.layers.")})
        info.update(vertices=vm.shape[1] // 3, variant=_variant(vm.shape[1] // 3),
                    subjects=int(state["learnable_style_emb.weight"].shape[0]),
                    feature_dim=int(vm.shape[0]), decoder_layers=layers,
                    ppe_rows=int(state["PPE.pe"].shape[1]),
                    audio_encoder_layers=len({k.split(".")[3] for k in state if k.startswith("audio_encoder.encoder.layers.")}))
    return info


def _variant(vertices: int) -> str:
    from .mesh import describe_topology

    return describe_topology(vertices)


def _describe_config(cfg: ModelConfig) -> dict:
    return {
        "dataset": cfg.dataset,
        "variant": _variant(cfg.num_vertices),
        "vertices": cfg.num_vertices,
        "fps": cfg.fps,
        "subjects": list(cfg.subjects),
        "stage1": f"hidden {cfg.vq.hidden_size}, {cfg.vq.num_hidden_layers} layers, "
                  f"{cfg.vq.face_quan_num} codes/frame of {cfg.vq.zquant_dim}, codebook {cfg.vq.n_embed}",
        "stage2": f"width {cfg.predictor.feature_dim}, {cfg.predictor.num_layers} layers, "
                  f"{cfg.predictor.n_head} heads, period {cfg.predictor.period}",
        "audio_encoder": (
            "whisper " + (json.dumps(cfg.whisper) if cfg.whisper else "tiny")
            if cfg.audio_encoder == "whisper"
            else "wav2vec2 " + (json.dumps({k: cfg.wav2vec2[k] for k in ("hidden_size", "num_hidden_layers")
                                             if k in cfg.wav2vec2}) if cfg.wav2vec2 else "base-960h")
        ),
    }
