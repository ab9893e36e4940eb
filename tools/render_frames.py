"""Render chosen frames of a vertex sequence to PNG stills (Workbench), for checking motion by eye.

    .venv/bin/python tools/render_frames.py --template FLAME_sample.ply --motion seq.npy \
        --frames 0 10 20 --out /tmp/frames [--view FRONT|THREE_QUARTER] [--size 384] [--zoom mouth]

``--motion`` is (T, V*3) or (T, V, 3) vertex positions (absolute, as in the
published ``vertices_npy`` files). Uses the bpy module (no Blender binary).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", required=True)
    ap.add_argument("--motion", required=True)
    ap.add_argument("--frames", type=int, nargs="+", default=[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--view", default="FRONT", choices=["FRONT", "THREE_QUARTER"])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--mouth", type=int, nargs=2, default=None, metavar=("UPPER", "LOWER"),
                    help="lip vertex pair: frame the mouth instead of the head")
    args = ap.parse_args(argv)

    import bpy

    from codetalker_blender.blender import batch
    from codetalker_blender.blender.ops import create_mesh_object
    from codetalker_blender.core.mesh import load_mesh

    verts, faces = load_mesh(args.template)
    motion = np.load(args.motion, mmap_mode="r")
    motion = np.asarray(motion).reshape(len(motion), -1, 3)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    obj = create_mesh_object(bpy.context, "Head", verts, faces, y_up=True)
    if args.mouth:
        centre = motion[:, list(args.mouth)].mean(axis=(0, 1))
        frame_box = (motion - centre) / 3.0 + centre  # frame the middle third of the head
        batch._setup_camera(scene, obj, frame_box[:, ::7], args.view)
    else:
        batch._setup_camera(scene, obj, motion, args.view)
    batch._setup_look(scene, obj, "WORKBENCH")
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = args.size
    scene.render.image_settings.file_format = "PNG"
    os.makedirs(args.out, exist_ok=True)
    for f in args.frames:
        obj.data.vertices.foreach_set("co", np.ascontiguousarray(motion[f], np.float32).ravel())
        obj.data.update()
        scene.render.filepath = os.path.join(args.out, f"frame_{f:05d}.png")
        bpy.ops.render.render(write_still=True)
        print(scene.render.filepath)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
