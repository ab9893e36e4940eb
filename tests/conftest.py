"""Shared test fixtures.

The read-only ``shared`` folder (golden checkpoints, meshes, speech clips) is
found through CODETALKER_SHARED, defaulting to ../shared beside the repository.
Its absence is an error, not a skip: CI always has it.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import numpy as np
import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]

# Blender (the bpy module) must never read or write the user's real config:
# point its user folders at a scratch directory before anything imports bpy.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="codetalker-blender-user-"))
SHARED = pathlib.Path(os.environ.get("CODETALKER_SHARED", REPO.parent / "shared")).resolve()
GOLDEN = SHARED / "golden"

# A tiny wav2vec2 (7 conv layers as in base, so 320-sample hop and 400-sample window).
TINY_WAV2VEC2 = dict(
    conv_dim=[8] * 7,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=24,
    num_conv_pos_embeddings=8,
    num_conv_pos_embedding_groups=2,
)


def pytest_configure(config):
    if not (GOLDEN / "vocaset_s11" / "meta.json").is_file():
        raise pytest.UsageError(
            f"shared test data not found at {SHARED}; set CODETALKER_SHARED to the shared folder"
        )


@pytest.fixture(scope="session")
def shared() -> pathlib.Path:
    return SHARED


def golden_cases():
    """(dataset folder, case dict) for every case in every golden meta.json."""
    out = []
    for meta_path in sorted(GOLDEN.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        for case in meta["cases"]:
            out.append(pytest.param(meta_path.parent, case, id=f"{meta_path.parent.name}-{case['file']}"))
    return out


_GOLDEN_MODELS: dict = {}


def golden_model(folder: pathlib.Path):
    """The golden reference model of ``folder``, loaded once per session."""
    from codetalker_blender.core import load_model

    if folder not in _GOLDEN_MODELS:
        _GOLDEN_MODELS[folder] = load_model(
            config=folder / "config.yaml", stage1=folder / "stage1.pth.tar", stage2=folder / "stage2.pth.tar"
        )
    return _GOLDEN_MODELS[folder]


def tiny_model(dataset: str = "vocaset", seed: int = 0, vertices: int = 12, **overrides):
    """A small random CodeTalker with the structure of a published variant.

    The codebook is spread out so that neighbouring frames pick different codes.
    """
    from codetalker_blender.core.config import published_config
    from codetalker_blender.core.predictor import CodeTalker

    torch.manual_seed(seed)
    cfg = published_config(
        dataset,
        vertice_dim=vertices * 3,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        face_quan_num=2,
        zquant_dim=8,
        n_embed=32,
        feature_dim=16,
        num_layers=2,
        wav2vec2=TINY_WAV2VEC2,
        **overrides,
    )
    model = CodeTalker(cfg).eval()
    with torch.no_grad():
        model.autoencoder.quantize.embedding.weight.normal_(0.0, 1.0)
    return model


def random_speechlike(seconds: float, seed: int = 0, sr: int = 16000) -> np.ndarray:
    """Amplitude-modulated noise: enough structure to give varied features."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    return (0.3 * envelope * rng.standard_normal(t.size)).astype(np.float32)
