"""Bake timing in headless Blender: writing N seconds of FLAME animation in both modes.

    .venv/bin/python tools/bench_bake.py --seconds 60 600

The motion is synthetic (smooth, low-rank displacements of the FLAME sample
mesh resampled from 30 fps to the scene's 24 fps), so only the baking is
timed: resampling, the compact basis (SVD), and the Blender writes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="codetalker-bench-"))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import codetalker_blender  # noqa: E402
from codetalker_blender.blender import bake, ops  # noqa: E402
from codetalker_blender.blender.jobs import BakeResult  # noqa: E402
from codetalker_blender.core.mesh import load_mesh  # noqa: E402
from codetalker_blender.core.motion import compact_basis, default_error_bound, resample  # noqa: E402


def synthetic_motion(template: np.ndarray, frames: int, rank: int = 24, seed: int = 0) -> np.ndarray:
    """Smooth low-rank motion, a few millimetres, like speech on a head in metres."""
    rng = np.random.default_rng(seed)
    # smooth fields: low-frequency sinusoids of position, strongest around the lower face
    centre = template.mean(0)
    directions = rng.standard_normal((rank, 3, 3)) * 25.0  # (k, out axis, in axis) spatial frequencies, 1/m
    phases0 = rng.uniform(0, 2 * np.pi, (rank, 3))
    fields = np.sin(np.einsum("koi,vi->kvo", directions, template - centre) + phases0[:, None, :])
    weights = np.exp(-np.linalg.norm(template - centre, axis=1) / 0.08)[None, :, None]
    fields = (fields * weights * 1e-3).astype(np.float32)
    t = np.arange(frames) / 30.0
    freqs = rng.uniform(0.5, 6.0, rank)
    phases = rng.uniform(0, 2 * np.pi, rank)
    coef = np.sin(2 * np.pi * freqs[None] * t[:, None] + phases[None]).astype(np.float32)
    return template[None] + np.einsum("tk,kvc->tvc", coef, fields)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[60.0])
    p.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED",
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")))
    args = p.parse_args(argv)
    codetalker_blender.register()
    verts, faces = load_mesh(os.path.join(args.shared, "assets", "flame", "FLAME_sample.ply"))
    print(f"Blender {bpy.app.version_string}; FLAME sample mesh, {len(verts)} vertices; scene at 24 fps")
    print("| animation | mode | frames | keys | max error | resample | basis (SVD) | Blender write | total |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seconds in args.seconds:
        model_motion = synthetic_motion(verts, int(seconds * 30))
        for mode in ("COMPACT", "PER_FRAME"):
            bpy.ops.wm.read_factory_settings(use_empty=True)
            scene = bpy.context.scene
            scene.render.fps = 24
            obj = ops.create_mesh_object(bpy.context, "FLAME", verts, faces)
            t0 = time.perf_counter()
            motion = resample(model_motion, 30.0, 24.0)
            t1 = time.perf_counter()
            bound = default_error_bound(verts)
            basis = compact_basis(motion, verts, bound) if mode == "COMPACT" else None
            t2 = time.perf_counter()
            result = BakeResult(motion, 30.0, model_motion.shape[0], basis, bound, 0.0)
            info = bake.apply_bake(scene, obj, result, 1)
            t3 = time.perf_counter()
            print(f"| {seconds:g} s | {mode.lower()} | {motion.shape[0]} | {info['keys']} | "
                  f"{info['max_error'] * 1000:.4f} mm | {t1 - t0:.2f} s | {t2 - t1:.2f} s | {t3 - t2:.2f} s | "
                  f"{t3 - t0:.2f} s |", flush=True)
    codetalker_blender.unregister()
    return 0


if __name__ == "__main__":
    sys.exit(main())
