"""Render timing for batch previews: seconds of rendering per second of audio.

    .venv/bin/python tools/bench_render.py --seconds 4 --engine WORKBENCH --resolution 512

A FLAME head (the shared sample mesh) with baked synthetic speech-like motion
(see bench_bake.py) and a real speech clip as sound, rendered to MP4 (H.264 +
AAC) exactly as the batch does. Only the render is timed: the model's time is
in tools/bench.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="codetalker-bench-"))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402
from bench_bake import synthetic_motion  # noqa: E402

from codetalker_blender.blender import bake, batch, ops  # noqa: E402
from codetalker_blender.blender.jobs import BakeResult, ModelSource  # noqa: E402
from codetalker_blender.core.batch import Job  # noqa: E402
from codetalker_blender.core.mesh import load_mesh  # noqa: E402
from codetalker_blender.core.motion import compact_basis, default_error_bound, resample  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--engine", default="WORKBENCH", choices=("WORKBENCH", "EEVEE", "CYCLES"))
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED",
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")))
    p.add_argument("--keep", default="", help="also copy the movie here")
    args = p.parse_args(argv)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    verts, faces = load_mesh(os.path.join(args.shared, "assets", "flame", "FLAME_sample.ply"))
    obj = ops.create_mesh_object(bpy.context, "FLAME", verts, faces, y_up=True)
    scene.render.fps = int(args.fps)
    motion = resample(synthetic_motion(verts, int(args.seconds * 30)), 30.0, args.fps)
    bound = default_error_bound(verts)
    bake.apply_bake(scene, obj, BakeResult(motion, 30.0, 0, compact_basis(motion, verts, bound), bound, 0.0), 1,
                    extend_range=False)
    audio = os.path.join(args.shared, "audio", "arctic_a0007.wav")
    bake.ensure_sound_strip(scene, audio, 1)
    out = tempfile.mkdtemp(prefix="codetalker-render-")
    movie = os.path.join(out, "bench.mp4")
    options = batch.BatchOptions(model=ModelSource("FILE"), out_dir=out, engine=args.engine,
                                 resolution=(args.resolution, args.resolution), fps=args.fps)
    frames = motion.shape[0]
    batch.setup_render(scene, obj, motion, options, Job(audio=audio, output="bench"), movie, frames)
    t0 = time.perf_counter()
    bpy.ops.render.render(animation=True)
    elapsed = time.perf_counter() - t0
    seconds = frames / args.fps
    print(f"\n{args.engine} {args.resolution}x{args.resolution}, {frames} frames ({seconds:.2f} s at {args.fps:g} fps) "
          f"in {elapsed:.2f} s: {elapsed / seconds:.2f} s of rendering per second of audio, "
          f"{elapsed / frames * 1000:.0f} ms per frame; movie {os.path.getsize(movie) / 1e3:.0f} kB")
    if args.keep:
        import shutil

        shutil.copy(movie, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
