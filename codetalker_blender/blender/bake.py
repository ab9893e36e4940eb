"""Writing a bake into the scene: shape keys, their animation, the sound strip.

Main thread only. Bulk data goes through ``foreach_set``/``foreach_get``.
Works on Blender 4.2 LTS (legacy ``action.fcurves``) through 5.x (slotted
actions with channelbags, new shape keys created at value 1.0).
"""

from __future__ import annotations

import json
import os

import bpy
import numpy as np

from ..core.mesh import describe_topology

KEY_PREFIX = "CT_"
GROUP_NAME = "CodeTalker"
BAKE_PROP = "codetalker_bake"
LINEAR, CONSTANT = "LINEAR", "CONSTANT"


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def rest_positions(obj) -> np.ndarray:
    """(V, 3) float32: the reference shape key if there are shape keys, else the vertices."""
    mesh = obj.data
    out = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    keys = mesh.shape_keys
    if keys is not None and keys.reference_key is not None:
        _key_points(keys.reference_key).foreach_get("co", out)
    else:
        mesh.vertices.foreach_get("co", out)
    return out.reshape(-1, 3)


def topology_label(obj) -> str:
    if obj is None or obj.type != "MESH":
        return "no mesh selected"
    return describe_topology(len(obj.data.vertices))


def _key_points(key_block):
    # ``points`` is the fast collection (4.1+); ``data`` is the generic one.
    return key_block.points if hasattr(key_block, "points") else key_block.data


# ----------------------------------------------------------------------------- sound


def _strips(sequence_editor):
    return sequence_editor.strips if hasattr(sequence_editor, "strips") else sequence_editor.sequences


def sound_strips(scene) -> list:
    se = scene.sequence_editor
    if se is None:
        return []
    return [s for s in _strips(se) if s.type == "SOUND"]


def strip_audio_path(strip) -> str:
    return bpy.path.abspath(strip.sound.filepath, library=strip.sound.library)


STRIP_TAG = "codetalker_audio"  # custom property on the sound strips we add


def ensure_sound_strip(scene, filepath: str, frame_start: int):
    """A sound strip playing ``filepath`` from ``frame_start``; an identical one is reused.

    Strips we added earlier for the same file at another frame are removed, so
    a re-bake with a new start frame does not play the sound twice.
    """
    target = os.path.normcase(os.path.abspath(bpy.path.abspath(filepath)))
    found = None
    for strip in sound_strips(scene):
        if os.path.normcase(os.path.abspath(strip_audio_path(strip))) != target:
            continue
        if int(strip.frame_start) == frame_start and found is None:
            found = strip
        elif strip.get(STRIP_TAG):
            _strips(scene.sequence_editor).remove(strip)
    if found is not None:
        return found
    se = scene.sequence_editor or scene.sequence_editor_create()
    used = {s.channel for s in _strips(se)}
    channel = next((c for c in range(1, 129) if c not in used), None)
    if channel is None:
        raise RuntimeError("all 128 sequencer channels are in use")
    strip = _strips(se).new_sound(os.path.basename(target), target, channel=channel, frame_start=frame_start)
    strip[STRIP_TAG] = True
    return strip


# ----------------------------------------------------------------------------- animation


def _fcurve_container(key, create: bool):
    """The object holding the Key's F-curves: a channelbag (4.4+) or the action (4.2)."""
    ad = key.animation_data
    if ad is None:
        if not create:
            return None
        ad = key.animation_data_create()
    action = ad.action
    if action is None:
        if not create:
            return None
        action = bpy.data.actions.new(f"{GROUP_NAME}_{key.user.name}" if key.user else GROUP_NAME)
        ad.action = action
    if not hasattr(action, "slots"):
        return action
    slot = ad.action_slot
    if slot is None:
        if not create:
            return None
        # a slot made for this Key before (same name), else a new one: never another ID's slot
        slot = next((s for s in action.slots if s.target_id_type == "KEY"
                     and getattr(s, "name_display", None) == key.name), None)
        if slot is None:
            slot = action.slots.new(id_type="KEY", name=key.name)
        ad.action_slot = slot
    if not action.layers:
        if not create:
            return None
        action.layers.new("Layer")
    layer = action.layers[0]
    if not layer.strips:
        if not create:
            return None
        layer.strips.new(type="KEYFRAME")
    strip = layer.strips[0]
    return strip.channelbag(slot, ensure=create)


def _our_key_names(key) -> list[str]:
    return [kb.name for kb in key.key_blocks if kb.name.startswith(KEY_PREFIX)]


def clear_bake(obj) -> int:
    """Remove our shape keys and F-curves from ``obj``; the user's stay. Returns keys removed."""
    key = obj.data.shape_keys
    if key is None:
        return 0
    names = _our_key_names(key)
    container = _fcurve_container(key, create=False)
    if container is not None:  # ours, including curves whose keys the user deleted
        for fc in [fc for fc in container.fcurves if (_key_name_of(fc.data_path) or "").startswith(KEY_PREFIX)]:
            container.fcurves.remove(fc)
    for name in names:
        obj.shape_key_remove(key.key_blocks[name])
    if BAKE_PROP in key:
        del key[BAKE_PROP]
    return len(names)


def _key_name_of(data_path: str) -> str | None:
    prefix = 'key_blocks["'
    if data_path.startswith(prefix) and data_path.endswith('"].value'):
        return data_path[len(prefix) : -len('"].value')]
    return None


def _new_fcurve(container, key_name: str):
    path = f'key_blocks["{key_name}"].value'
    if isinstance(container, bpy.types.Action):  # Blender 4.2: groups come with fcurves.new
        return container.fcurves.new(path, index=0, action_group=GROUP_NAME)
    fc = container.fcurves.new(path, index=0)
    group = container.groups.get(GROUP_NAME) if hasattr(container.groups, "get") else None
    if group is None:
        group = next((g for g in container.groups if g.name == GROUP_NAME), None) or container.groups.new(GROUP_NAME)
    fc.group = group
    return fc


_INTERPOLATION = {CONSTANT: 0, LINEAR: 1}


def _set_keyframes(fc, frames: np.ndarray, values: np.ndarray, interpolation: str) -> None:
    n = len(frames)
    fc.keyframe_points.add(n)
    co = np.empty(2 * n, dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.full(n, _INTERPOLATION[interpolation], dtype=np.int32))
    fc.update()


def _add_keys(obj, names: list[str], coords: np.ndarray) -> list:
    """Add shape keys ``names`` with absolute positions coords (K, V, 3), value 0."""
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    blocks = []
    for name, co in zip(names, coords):
        kb = obj.shape_key_add(name=name, from_mix=False)
        _key_points(kb).foreach_set("co", np.ascontiguousarray(co, dtype=np.float32).ravel())
        kb.value = 0.0  # 5.0 creates new keys at 1.0
        blocks.append(kb)
    return blocks


def apply_bake(scene, obj, result, start_frame: int, extend_range: bool = True) -> dict:
    """Replace our previous bake on ``obj`` with ``result`` (a jobs.BakeResult)."""
    clear_bake(obj)
    rest = rest_positions(obj)
    motion = result.motion
    frames = start_frame + np.arange(motion.shape[0], dtype=np.float32)
    if result.basis is not None:
        basis = result.basis
        names = [f"{KEY_PREFIX}basis_{k:03d}" for k in range(basis.size)]
        blocks = _add_keys(obj, names, rest[None] + basis.displacements)
        container = _fcurve_container(obj.data.shape_keys, create=True)
        for k, kb in enumerate(blocks):
            kb.slider_min, kb.slider_max = -1.0, 1.0
            _set_keyframes(_new_fcurve(container, kb.name), frames, basis.coefficients[:, k], LINEAR)
        info = {"mode": "compact", "keys": basis.size, "max_error": basis.max_error}
    else:
        names = [f"{KEY_PREFIX}frame_{i:05d}" for i in range(motion.shape[0])]
        blocks = _add_keys(obj, names, motion)
        container = _fcurve_container(obj.data.shape_keys, create=True)
        last = len(blocks) - 1
        for i, kb in enumerate(blocks):
            f = frames[i]
            pts = [(f - 1, 0.0)] if i > 0 else []
            pts.append((f, 1.0))
            if i < last:
                pts.append((f + 1, 0.0))
            arr = np.asarray(pts, dtype=np.float32)
            _set_keyframes(_new_fcurve(container, kb.name), arr[:, 0], arr[:, 1], CONSTANT)
        info = {"mode": "per-frame", "keys": len(blocks), "max_error": 0.0}
    info.update(frames=int(motion.shape[0]), start_frame=int(start_frame), fps=scene_fps(scene),
                model_fps=result.model_fps, error_bound=result.error_bound, seconds=result.seconds)
    obj.data.shape_keys[BAKE_PROP] = json.dumps(info)
    end = int(frames[-1]) if len(frames) else start_frame
    if extend_range and end > scene.frame_end:
        scene.frame_end = end
    obj.data.update()
    return info


def bake_info(obj) -> dict | None:
    key = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    if key is None or BAKE_PROP not in key:
        return None
    try:
        info = json.loads(key[BAKE_PROP])
    except (TypeError, ValueError):
        return None
    return info if isinstance(info, dict) else None
