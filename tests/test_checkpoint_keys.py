"""State-dict keys and shapes equal the four published checkpoints.

The full-size models are built on the meta device: structure, no memory.
"""

import json

import pytest
from conftest import SHARED

from codetalker_blender.core.checkpoint import build_empty, to_legacy_name
from codetalker_blender.core.config import published_config

MANIFEST = json.loads((SHARED / "reference" / "official_checkpoint_keys.json").read_text())


def _shapes(state):
    return {to_legacy_name(k): list(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("dataset", ["vocaset", "BIWI"])
def test_published_keys_and_shapes(dataset):
    model = build_empty(published_config(dataset))
    assert next(model.parameters()).is_meta
    stage1 = _shapes(model.autoencoder.state_dict())
    stage2 = _shapes({k: v for k, v in model.state_dict().items() if not k.startswith("autoencoder.")})
    for ours, name in ((stage1, f"{dataset}_stage1"), (stage2, f"{dataset}_stage2")):
        published = MANIFEST[name]
        assert sorted(set(published) - set(ours)) == [], f"{name}: keys we lack"
        assert sorted(set(ours) - set(published)) == [], f"{name}: keys we have extra"
        wrong = {k: (ours[k], published[k]) for k in published if ours[k] != published[k]}
        assert wrong == {}, f"{name}: shape mismatches"


def test_weight_norm_names_map_both_ways():
    from codetalker_blender.core.checkpoint import _to_current_name

    legacy = "audio_encoder.encoder.pos_conv_embed.conv.weight_g"
    current = _to_current_name(legacy)
    assert current == "audio_encoder.encoder.pos_conv_embed.conv.parametrizations.weight.original0"
    assert to_legacy_name(current) == legacy
