"""Smoke test of the extension on another Blender version (e.g. bpy 4.2 LTS).

Run as a script with the bpy module of that version importable:

    python tests/blender_smoke.py SHARED_DIR

It registers the add-on, bakes the golden vocaset model in both modes, checks
the evaluated mesh against the core's prediction, re-bakes, and unregisters.
Prints SMOKE-OK on success. tests/test_blender_versions.py drives it.
"""

import os
import sys
import tempfile

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="codetalker-smoke-"))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import codetalker_blender  # noqa: E402
from codetalker_blender.blender import bake, ops  # noqa: E402
from codetalker_blender.core import animate, load_model  # noqa: E402
from codetalker_blender.core.motion import resample  # noqa: E402


def evaluated(obj, frame):
    bpy.context.scene.frame_set(frame)
    dg = bpy.context.evaluated_depsgraph_get()
    me = obj.evaluated_get(dg).data
    out = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", out)
    return out.reshape(-1, 3)


def main(shared: str) -> None:
    golden = os.path.join(shared, "golden", "vocaset_s11")
    speech = os.path.join(shared, "audio", "one_two_three.wav")
    codetalker_blender.register()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 24
    obj = ops.create_mesh_object(bpy.context, "head", np.load(os.path.join(golden, "template.npy")).reshape(-1, 3), None)
    s = scene.codetalker
    s.model_source = "PUBLISHED"
    s.stage1_path = os.path.join(golden, "stage1.pth.tar")
    s.stage2_path = os.path.join(golden, "stage2.pth.tar")
    s.config_path = os.path.join(golden, "config.yaml")
    s.audio_path, s.start_frame = speech, 1
    model = load_model(config=s.config_path, stage1=s.stage1_path, stage2=s.stage2_path)
    expected = resample(animate(model, speech, bake.rest_positions(obj), None, device="cpu").vertices, 30.0, 24.0)
    for mode in ("PER_FRAME", "COMPACT", "PER_FRAME"):
        s.bake_mode = mode
        assert bpy.ops.codetalker.bake() == {"FINISHED"}, mode
        info = bake.bake_info(obj)
        tol = 1e-5 if mode == "PER_FRAME" else info["error_bound"] * 1.01 + 1e-6
        for i in (0, 10, expected.shape[0] - 1):
            err = np.linalg.norm(evaluated(obj, 1 + i) - expected[i], axis=1).max()
            assert err <= tol, (mode, i, err)
    state = bpy.context.window_manager.codetalker_state
    assert len(bake.sound_strips(scene)) == 1 or "no sound strip added" in state.status, state.status
    codetalker_blender.unregister()
    print("SMOKE-OK", bpy.app.version_string)


if __name__ == "__main__":
    main(sys.argv[1])
