"""The extension in real Blender (the bpy 5.0.1 module), headless.

Bakes run synchronously through the operator's execute(), which starts the
same background job the modal operator uses and waits on it.
"""

import os
import subprocess
import sys

import bpy  # noqa: E402  (after conftest set BLENDER_USER_RESOURCES)
import numpy as np
import pytest
from blender_smoke import evaluated as _evaluated
from conftest import GOLDEN, REPO, SHARED, golden_model

import codetalker_blender
from codetalker_blender.blender import bake, ops
from codetalker_blender.blender.jobs import BakeJob
from codetalker_blender.core import animate
from codetalker_blender.core.motion import resample

VOCA = GOLDEN / "vocaset_s11"
BIWI = GOLDEN / "biwi_s23"
SPEECH = SHARED / "audio" / "one_two_three.wav"


@pytest.fixture(scope="module", autouse=True)
def addon():
    codetalker_blender.register()
    yield
    codetalker_blender.unregister()


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def _head(folder, name="head"):
    tpl = np.load(folder / "template.npy").reshape(-1, 3)
    return ops.create_mesh_object(bpy.context, name, tpl, None)


def _configure(scene, folder, audio=SPEECH, mode="PER_FRAME", style="S1"):
    s = scene.codetalker
    s.model_source = "PUBLISHED"
    s.stage1_path, s.stage2_path = str(folder / "stage1.pth.tar"), str(folder / "stage2.pth.tar")
    s.config_path = str(folder / "config.yaml")
    s.audio_source, s.audio_path, s.start_frame = "FILE", str(audio), 1
    s.bake_mode = mode
    bpy.ops.codetalker.refresh_styles()
    for item in s.styles:
        item.weight = 1.0 if item.name == style else 0.0
    return s


def _expected(folder, scene, obj, style, audio=SPEECH):
    model = golden_model(folder)
    result = animate(model, audio, bake.rest_positions(obj), style, device="cpu")
    return resample(result.vertices, result.fps, bake.scene_fps(scene))


def _snapshot(scene, obj):
    key = obj.data.shape_keys
    ad = key.animation_data if key else None
    return dict(
        keys=[(kb.name, kb.value) for kb in key.key_blocks] if key else [],
        action=ad.action.name if ad and ad.action else None,
        frame_end=scene.frame_end,
        strips=[s.name for s in bake.sound_strips(scene)],
        coords=_evaluated(obj, 5).copy(),
    )


def test_register_unregister_twice():
    codetalker_blender.unregister()
    assert not hasattr(bpy.types.Scene, "codetalker")
    codetalker_blender.register()
    codetalker_blender.unregister()
    codetalker_blender.register()
    assert hasattr(bpy.types.Scene, "codetalker") and hasattr(bpy.ops.codetalker, "bake")


def test_import_flame_template(scene):
    assert bpy.ops.codetalker.import_template(filepath=str(SHARED / "assets" / "flame" / "FLAME_sample.ply")) == {"FINISHED"}
    obj = bpy.context.active_object
    assert len(obj.data.vertices) == 5023 and len(obj.data.polygons) == 9976
    assert bake.topology_label(obj).startswith("FLAME")


@pytest.mark.parametrize("fps,fps_base", [(24, 1.0), (30, 1.0), (24, 1.001), (60, 1.0)])
def test_per_frame_bake_matches_core_prediction(scene, fps, fps_base):
    scene.render.fps, scene.render.fps_base = fps, fps_base
    obj = _head(VOCA)
    _configure(scene, VOCA, mode="PER_FRAME", style="S1")
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    expected = _expected(VOCA, scene, obj, "S1")
    info = bake.bake_info(obj)
    assert info["frames"] == expected.shape[0] and info["mode"] == "per-frame"
    seconds = expected.shape[0] / (fps / fps_base)
    assert abs(seconds - 82 / 30) < 2 / (fps / fps_base)  # 82 model frames at 30 fps, resampled in time
    for i in sorted({0, 1, expected.shape[0] // 2, expected.shape[0] - 1}):
        assert np.abs(_evaluated(obj, 1 + i) - expected[i]).max() <= 1e-5, i
    strips = bake.sound_strips(scene)
    assert len(strips) == 1 and int(strips[0].frame_start) == 1
    assert scene.frame_end >= expected.shape[0]


def test_compact_bake_within_reported_bound_biwi(scene):
    scene.render.fps = 25
    obj = _head(BIWI)
    settings = _configure(scene, BIWI, mode="COMPACT", style="F3")
    settings.style_mode = "AB"
    settings.style_a, settings.style_b, settings.style_blend = "M5", "F2", 0.3
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    info = bake.bake_info(obj)
    assert info["mode"] == "compact" and 0 < info["keys"] < info["frames"]
    assert info["max_error"] <= info["error_bound"]
    from codetalker_blender.core.style import two_style

    expected = _expected(BIWI, scene, obj, two_style("M5", "F2", 0.3, golden_model(BIWI).cfg.subjects))
    worst = max(np.linalg.norm(_evaluated(obj, 1 + i) - expected[i], axis=1).max()
                for i in range(0, expected.shape[0], 7))
    assert worst <= info["error_bound"] * 1.01 + 1e-6


def test_mix_motions_bake_is_the_weighted_mix_of_the_single_styles(scene):
    obj = _head(VOCA)
    settings = _configure(scene, VOCA, mode="PER_FRAME")
    settings.style_mode, settings.blend_method = "AB", "MOTION"
    settings.style_a, settings.style_b, settings.style_blend = "S0", "S2", 0.3
    assert ops.build_spec(bpy.context)[0].blend == "motion"
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    expected = 0.3 * _expected(VOCA, scene, obj, "S0") + 0.7 * _expected(VOCA, scene, obj, "S2")
    for i in sorted({0, expected.shape[0] // 2, expected.shape[0] - 1}):
        assert np.abs(_evaluated(obj, 1 + i) - expected[i]).max() <= 1e-5, i
    assert ops.style_runs(settings) == 2
    settings.style_blend = 1.0
    assert ops.style_runs(settings) == 1
    settings.style_mode = "MIX"
    assert ops.style_runs(settings) == 1  # _configure weighted one style
    for item in settings.styles:
        item.weight = 1.0
    assert ops.style_runs(settings) == len(settings.styles)
    settings.blend_method = "MODEL"
    assert ops.build_spec(bpy.context)[0].blend == "model" and ops.style_runs(settings) == 1


def test_rebake_replaces_only_ours_and_keeps_user_keys(scene):
    obj = _head(VOCA)
    obj.shape_key_add(name="Basis", from_mix=False)
    smile = obj.shape_key_add(name="Smile", from_mix=False)
    smile.value = 0.25
    smile.keyframe_insert("value", frame=10)
    _configure(scene, VOCA, mode="PER_FRAME")
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    first = len(obj.data.shape_keys.key_blocks)
    scene.codetalker.bake_mode = "COMPACT"
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    names = [kb.name for kb in obj.data.shape_keys.key_blocks]
    assert names[:2] == ["Basis", "Smile"] and obj.data.shape_keys.key_blocks["Smile"].value == 0.25
    ours = [n for n in names if n.startswith("CT_")]
    assert all(n.startswith("CT_basis_") for n in ours) and len(names) < first
    container = bake._fcurve_container(obj.data.shape_keys, create=False)
    paths = [fc.data_path for fc in container.fcurves]
    assert 'key_blocks["Smile"].value' in paths
    assert len(paths) == 1 + len(ours)
    assert len(bake.sound_strips(scene)) == 1  # the strip is reused, not duplicated
    assert bpy.ops.codetalker.clear() == {"FINISHED"}
    assert [kb.name for kb in obj.data.shape_keys.key_blocks] == ["Basis", "Smile"]


def test_cancel_leaves_the_scene_unchanged(scene):
    obj = _head(VOCA)
    _configure(scene, VOCA)
    before = _snapshot(scene, obj)
    spec, obj2, start = ops.build_spec(bpy.context)
    seen = []

    class SlowCancel:  # cancel once the worker has produced a few frames
        def __call__(self):
            return len(seen) >= 3

    job = BakeJob(spec)
    job.cancel_event.is_set = SlowCancel()
    original = job.messages.put
    job.messages.put = lambda m: (seen.append(m) if m[0] == "progress" else None, original(m))
    job.start()
    assert job.wait() == "cancelled"
    report = []
    assert ops.finish_bake(bpy.context, job, obj.name, start, lambda *a: report.append(a)) == {"CANCELLED"}
    assert "cancelled" in report[0][1].lower()
    after = _snapshot(scene, obj)
    assert {k: v for k, v in after.items() if k != "coords"} == {k: v for k, v in before.items() if k != "coords"}
    assert np.array_equal(after["coords"], before["coords"])


def test_bake_is_one_undo_step(scene):
    _head(VOCA)
    _configure(scene, VOCA, mode="COMPACT")
    bpy.ops.ed.undo_push(message="before bake")
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    assert bpy.data.objects["head"].data.shape_keys is not None
    bpy.ops.ed.undo()
    head = bpy.data.objects["head"]
    assert head.data.shape_keys is None or not bake._our_key_names(head.data.shape_keys)
    assert not bake.sound_strips(bpy.context.scene)


def test_wrong_topology_and_missing_audio_are_reported(scene):
    tpl = np.load(VOCA / "template.npy").reshape(-1, 3)[:39]
    obj = ops.create_mesh_object(bpy.context, "wrong", tpl, None)
    _configure(scene, VOCA)
    with pytest.raises(RuntimeError, match="39 vertices.*expects 40.*5023"):
        bpy.ops.codetalker.bake()
    assert obj.data.shape_keys is None and not bake.sound_strips(scene)

    _head(VOCA, "good")
    scene.codetalker.audio_path = str(SHARED / "audio" / "does_not_exist.wav")
    with pytest.raises(RuntimeError, match="audio file not found"):
        bpy.ops.codetalker.bake()
    scene.codetalker.audio_source = "STRIP"
    with pytest.raises(RuntimeError, match="choose a sound strip"):
        bpy.ops.codetalker.bake()
    assert bpy.data.objects["good"].data.shape_keys is None


def test_corrupt_audio_fails_cleanly(scene, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all\n" * 10)
    obj = _head(VOCA)
    _configure(scene, VOCA, audio=bad)
    with pytest.raises(RuntimeError, match="could not read audio"):
        bpy.ops.codetalker.bake()
    assert obj.data.shape_keys is None and not bake.sound_strips(scene)


def test_sound_strip_source(scene):
    strip = bake.ensure_sound_strip(scene, str(SPEECH), 11)
    obj = _head(VOCA)
    s = _configure(scene, VOCA, mode="PER_FRAME")
    s.audio_source, s.sound_strip = "STRIP", strip.name
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    info = bake.bake_info(obj)
    assert info["start_frame"] == 11
    expected = _expected(VOCA, scene, obj, "S1")
    assert np.abs(_evaluated(obj, 11 + 5) - expected[5]).max() <= 1e-5
    assert len(bake.sound_strips(scene)) == 1


def test_save_and_reload(scene, tmp_path):
    obj = _head(VOCA)
    _configure(scene, VOCA, mode="COMPACT")
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    before = _evaluated(obj, 20).copy()
    path = str(tmp_path / "baked.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=path)
    head = bpy.data.objects["head"]
    assert np.array_equal(_evaluated(head, 20), before)
    assert bake.bake_info(head)["mode"] == "compact"
    assert bpy.context.scene.codetalker.bake_mode == "COMPACT"


def test_dependencies_installer_respects_online_access(scene):
    assert not bpy.app.online_access
    with pytest.raises(RuntimeError, match="Online access is disabled"):
        bpy.ops.codetalker.install_dependencies(variant="CPU")


def test_zip_installs_and_enables_through_blenders_extension_install(tmp_path):
    """Build the zip, install it with Blender's own operator in a fresh process, enable it."""
    out = subprocess.run([sys.executable, str(REPO / "tools" / "build_extension.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    zip_path = out.stdout.split()[1]
    script = f"""
import bpy, sys
res = bpy.ops.extensions.package_install_files(filepath={zip_path!r}, repo="user_default", enable_on_install=True)
assert res == {{"FINISHED"}}, res
assert "bl_ext.user_default.codetalker" in bpy.context.preferences.addons
assert hasattr(bpy.types.Scene, "codetalker") and hasattr(bpy.ops.codetalker, "bake")
import os
root = bpy.utils.user_resource("EXTENSIONS")
files = set(os.listdir(os.path.join(root, "user_default", "codetalker")))
assert "blender_manifest.toml" in files and "core" in files and "tests" not in files, files
print("INSTALLED-OK")
"""
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"), PYTHONPATH="")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert "INSTALLED-OK" in proc.stdout, proc.stdout + proc.stderr
    manifest = (REPO / "addon_manifest.toml").read_text()
    assert 'blender_version_min = "4.2.0"' in manifest and "SPDX:GPL-3.0-or-later" in manifest


def test_registers_without_dependencies_and_explains(tmp_path):
    """Blender ships numpy only: with torch & co. hidden, the add-on still registers and says what to do."""
    script = f"""
import sys
for name in ("torch", "transformers", "librosa", "soundfile", "safetensors", "yaml"):
    sys.modules[name] = None  # importing them now fails, as in a bare Blender
sys.path.insert(0, {str(REPO)!r})
import bpy
import codetalker_blender
codetalker_blender.register()
from codetalker_blender.blender import deps, ops
assert deps.missing() == ["torch", "transformers", "librosa", "soundfile", "safetensors", "yaml"], deps.missing()
tpl = [[0.0, 0.0, float(i)] for i in range(5023)]
import numpy as np
ops.create_mesh_object(bpy.context, "head", np.array(tpl, np.float32), None)
try:
    bpy.ops.codetalker.bake()
except RuntimeError as exc:
    assert "missing Python packages: torch" in str(exc), exc
    print("EXPLAINED")
codetalker_blender.unregister()
"""
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert "EXPLAINED" in proc.stdout, proc.stdout + proc.stderr


def test_bake_progress_is_reported_per_frame(scene):
    obj = _head(VOCA)
    _configure(scene, VOCA)
    spec, _, start = ops.build_spec(bpy.context)
    job = BakeJob(spec)
    job.start()
    fractions = []
    while job.poll() == "running":
        fractions.append(job.fraction)
    assert job.state == "finished" and job.done_frames == job.total_frames == 82
    assert fractions == sorted(fractions)
    assert ops.finish_bake(bpy.context, job, obj.name, start, lambda *a: None) == {"FINISHED"}


class _Layout:
    """Records a panel's draw calls and checks every property it names exists."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if name in ("prop", "prop_search"):
                data, prop = args[0], args[1]
                assert prop in data.bl_rna.properties, f"{type(data).__name__} has no property {prop!r}"
                if name == "prop_search":
                    assert hasattr(args[2], args[3]), f"no collection {args[3]!r}"
            if name == "operator":
                module, op = args[0].split(".")
                assert hasattr(getattr(bpy.ops, module), op), args[0]
            self.log.append((name, args, kwargs))
            return _Layout(self.log)

        return call


def test_panel_and_preferences_draw_in_every_state(scene):
    from codetalker_blender.blender import ui

    class Host:
        def __init__(self):
            self.log = []
            self.layout = _Layout(self.log)

    obj = _head(VOCA)
    settings = _configure(scene, VOCA)
    for source in ("FILE", "STRIP"):
        for model in ("BUNDLED", "PUBLISHED", "FILE"):
            for style_mode in ("MIX", "AB"):
                settings.audio_source, settings.model_source, settings.style_mode = source, model, style_mode
                host = Host()
                ui.CODETALKER_PT_main.draw(host, bpy.context)
                assert any(call[0] == "operator" and call[1][0] == "codetalker.bake" for call in host.log)
    settings.blend_method, settings.style_mode = "MOTION", "AB"
    host = Host()
    ui.CODETALKER_PT_main.draw(host, bpy.context)
    assert any("2 model runs" in str(c[2].get("text", "")) for c in host.log)
    settings.blend_method = "MODEL"
    bpy.context.window_manager.codetalker_state.running = True
    host = Host()
    ui.CODETALKER_PT_main.draw(host, bpy.context)
    assert any(c[0] == "progress" for c in host.log) and any(c[1][:1] == ("codetalker.cancel",) for c in host.log)
    bpy.context.window_manager.codetalker_state.running = False
    settings.audio_source, settings.model_source, settings.style_mode = "FILE", "PUBLISHED", "MIX"
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    host = Host()
    ui.CODETALKER_PT_main.draw(host, bpy.context)
    assert any(c[1][:1] == ("codetalker.clear",) for c in host.log)
    labels = " ".join(str(c[2].get("text", "")) for c in host.log)
    assert "Baked: 65 frames" in labels and obj.name in labels
    host = Host()
    ui.CODETALKER_AP_preferences.draw(host, bpy.context)
    labels = " ".join(str(c[2].get("text", "")) for c in host.log)
    assert "torch" in labels and "CUDA" in labels


def test_stale_curves_and_moved_start_frame(scene):
    obj = _head(VOCA)
    s = _configure(scene, VOCA, mode="COMPACT")
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    # the user deletes our keys by hand; their F-curves stay behind
    for kb in [kb for kb in obj.data.shape_keys.key_blocks if kb.name.startswith("CT_")]:
        obj.shape_key_remove(kb)
    s.start_frame = 25
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    strips = bake.sound_strips(scene)
    assert [int(st.frame_start) for st in strips] == [25]
    container = bake._fcurve_container(obj.data.shape_keys, create=False)
    names = {kb.name for kb in obj.data.shape_keys.key_blocks}
    assert all(bake._key_name_of(fc.data_path) in names for fc in container.fcurves)
    assert bake.bake_info(obj)["start_frame"] == 25


def test_rest_in_silence_setting(scene):
    from codetalker_blender.core.audio import SilenceGate

    obj = _head(VOCA)
    s = _configure(scene, VOCA, audio=SHARED / "audio" / "voca_test_sentence.wav", mode="PER_FRAME")
    assert s.rest_in_silence and s.silence_threshold == -22.0
    assert ops.build_spec(bpy.context)[0].gate == SilenceGate(threshold_db=-22.0)
    s.silence_threshold = -30.0
    assert ops.build_spec(bpy.context)[0].gate == SilenceGate(threshold_db=-30.0)
    s.rest_in_silence = False
    assert ops.build_spec(bpy.context)[0].gate is None
    s.silence_threshold = -22.0  # at -30 dB this clip's room noise (26-30 dB under its vowels) counts as speech
    rest = bake.rest_positions(obj)
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    moved = max(np.abs(_evaluated(obj, f) - rest).max() for f in range(1, 8))
    s.rest_in_silence = True
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    held = max(np.abs(_evaluated(obj, f) - rest).max() for f in range(1, 8))
    # the clip opens with half a second of room noise: the face rests there only with the gate
    assert moved > 1e-4 and held < 1e-6
    assert "at rest in silence for" in bpy.context.window_manager.codetalker_state.status


def test_default_settings_bake_with_the_bundled_model(scene):
    """Out of the box: import the FLAME template, pick a speech file, bake. No checkpoints needed."""
    assert bpy.ops.codetalker.import_template(filepath=str(SHARED / "assets" / "flame" / "FLAME_sample.ply")) == {"FINISHED"}
    obj = bpy.context.active_object
    s = scene.codetalker
    assert s.model_source == "BUNDLED" and s.quality == "auto"
    s.audio_source, s.audio_path = "FILE", str(SHARED / "audio" / "arctic_a0009.wav")
    bpy.ops.codetalker.refresh_styles()
    assert len(s.styles) >= 4
    assert bpy.ops.codetalker.bake() == {"FINISHED"}
    assert "(exact inference)" in bpy.context.window_manager.codetalker_state.status  # auto: 3 s decode exactly
    info = bake.bake_info(obj)
    assert abs(info["frames"] - 3.075 * scene.render.fps) <= 2
    frames = np.stack([_evaluated(obj, f) for f in range(1, info["frames"] + 1, 3)])
    gap = np.linalg.norm(frames[:, 3546] - frames[:, 3504], axis=1)
    assert gap.max() - gap.min() > 3e-3  # the lips move by millimetres
