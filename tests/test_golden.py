"""Our predictions equal the reference implementation's (golden fixtures)."""

import json

import numpy as np
import pytest
import torch
from conftest import golden_cases, golden_model

from codetalker_blender.core import animate
from codetalker_blender.core.audio import load_audio
from codetalker_blender.core.audio_encoder import encode_audio, normalise
from codetalker_blender.core.reference import reference_motion
from codetalker_blender.core.style import style_weights, two_style

TOLERANCE = 1e-4


def _style(model, case):
    if case["style2"]:
        return two_style(case["style"], case["style2"], case["weight_of_style"], model.cfg.subjects)
    return case["style"]


@pytest.mark.parametrize("folder,case", golden_cases())
def test_exact_mode_matches_reference(folder, case):
    model = golden_model(folder)
    expected = np.load(folder / case["file"])
    # gate=None: the reference has no silence gate
    result = animate(model, folder / "audio.wav", np.load(folder / "template.npy"), _style(model, case), device="cpu",
                     gate=None)
    assert result.vertices.shape[0] == case["frames"] == expected.shape[0]
    err = np.abs(result.vertices.reshape(expected.shape) - expected).max()
    print(f"{folder.name} {case['file']}: max abs error {err:.3g}")
    assert err <= TOLERANCE


@pytest.mark.parametrize("folder,case", golden_cases())
def test_transcribed_reference_algorithm_matches_golden(folder, case):
    """The oracle used by the invariant tests and the benchmark is itself faithful."""
    model = golden_model(folder)
    expected = np.load(folder / case["file"])
    weights = style_weights(_style(model, case), model.cfg.subjects)
    with torch.no_grad():
        feats, frames = encode_audio(model.audio_encoder, normalise(torch.from_numpy(load_audio(folder / "audio.wav"))),
                                     model.cfg.timing)
        motion = reference_motion(model, feats, frames, model.style_embedding(torch.from_numpy(weights)))
    out = motion.numpy() + np.load(folder / "template.npy")[None]
    assert np.abs(out - expected).max() <= TOLERANCE


def test_golden_meta_describes_both_datasets():
    from conftest import GOLDEN

    datasets = {json.loads(p.read_text())["dataset"] for p in GOLDEN.glob("*/meta.json")}
    assert datasets == {"vocaset", "BIWI"}
