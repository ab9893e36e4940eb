"""Batch previs renders: many dialogue clips to sound-synced preview movies.

For each job: set up a scene (a template mesh, or an object from a .blend),
bake the speech into shape keys exactly as the panel does, add the sound,
frame the head with a camera, light it neutrally, and render an MP4 (H.264 +
AAC). Optionally save one self-contained .blend per shot (baked, sound
packed) that renders with a plain ``blender -b shot.blend -a``.

Finished movies are skipped unless ``force``; a failing job is recorded and
the batch goes on; ``summary.json`` and ``summary.csv`` describe every job.

Used by the headless entry point (batch_render.py, ``blender -b -P``), by the
panel's Batch section, and directly from Python with the ``bpy`` module.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import bpy
import numpy as np
from mathutils import Vector

from ..core.audio import SilenceGate, add_gate_arguments, gate_from_args
from ..core.batch import Job, JobResult, load_jobs, write_summary
from ..core.errors import CodeTalkerError
from ..core.style import add_blend_argument
from . import bake
from .jobs import BakeJob, BakeSpec, ModelSource

ENGINES = {"WORKBENCH": "BLENDER_WORKBENCH", "EEVEE": None, "CYCLES": "CYCLES"}
RESOLUTIONS = {"TINY": (128, 128), "PREVIEW": (512, 512), "HD": (1280, 720), "FULL_HD": (1920, 1080)}


@dataclass
class BatchOptions:
    model: ModelSource
    out_dir: str
    mesh: str = ""  # default template (.ply/.obj/.npy) or .blend for jobs that name none
    object: str = ""  # default object name inside a .blend
    style: dict[str, float] | None = None  # default style weights
    blend: str = "model"  # core.style.BLENDS
    engine: str = "WORKBENCH"
    resolution: tuple[int, int] = (512, 512)
    fps: float = 24.0
    camera: str = "FRONT"  # FRONT or THREE_QUARTER
    burn_in: bool = True
    save_blend: bool = False
    force: bool = False
    device: str = "auto"
    mode: str = "auto"
    gate: SilenceGate | None = SilenceGate()  # None: the model's motion in silences as it is
    compact: bool = True
    cycles_samples: int = 16
    frame_limit: int = 0  # render at most this many frames per job (0: all); for tests and quick looks


@dataclass
class BatchProgress:
    """What a running batch reports: job index, name, stage and fraction of that stage."""

    index: int = 0
    total: int = 0
    job: str = ""
    stage: str = ""
    fraction: float = 0.0
    results: list[JobResult] = field(default_factory=list)


def _eevee_engine() -> str:
    items = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in items else "BLENDER_EEVEE"


def _fps_pair(fps: float) -> tuple[int, float]:
    """Blender's (fps, fps_base) for a rate such as 23.976 or 29.97."""
    for nominal in (24, 30, 60, 120):
        if abs(fps - nominal * 1000 / 1001) < 1e-3:
            return nominal, 1.001
    return int(round(fps)), round(fps) / fps


def _reset_scene() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def _load_subject(job: Job, options: BatchOptions):
    """Open the job's .blend or import its template into an empty scene; returns the head object."""
    from . import ops

    mesh = job.mesh or options.mesh
    if not mesh:
        raise CodeTalkerError("no mesh: give the job a mesh or the batch a default --mesh")
    if not os.path.isfile(mesh):
        raise CodeTalkerError(f"mesh file not found: {mesh}")
    if mesh.lower().endswith(".blend"):
        bpy.ops.wm.open_mainfile(filepath=mesh)
        name = job.object or options.object
        obj = bpy.data.objects.get(name) if name else bpy.context.active_object
        if obj is None or obj.type != "MESH":
            raise CodeTalkerError(f"{mesh} has no mesh object {name!r}" if name else
                                  f"{mesh}: name the head with 'object' (no active mesh)")
        if not obj.data.polygons:
            raise CodeTalkerError(f"'{obj.name}' in {mesh} has no faces to render")
        # only this job's sound: mute the file's own strips
        for strip in bake.sound_strips(bpy.context.scene):
            strip.mute = True
        return obj
    from ..core.mesh import load_mesh

    _reset_scene()
    verts, faces = load_mesh(mesh)
    if faces is None:
        raise CodeTalkerError(f"{mesh} has no (triangle) faces to render; use a .ply or .obj head with faces")
    return ops.create_mesh_object(bpy.context, os.path.splitext(os.path.basename(mesh))[0], verts, faces,
                                  y_up=True)


def _world_bounds(obj, motion: np.ndarray) -> tuple[Vector, float]:
    """Centre and radius (farthest vertex, over the whole animation) of the head, in world space."""
    mw = np.array(obj.matrix_world)
    pts = motion[:: max(1, len(motion) // 50)].reshape(-1, 3)  # a few dozen frames suffice
    world = pts @ mw[:3, :3].T + mw[:3, 3]
    lo, hi = world.min(0), world.max(0)
    centre = (lo + hi) / 2
    radius = float(np.sqrt(((world - centre) ** 2).sum(1)).max())
    return Vector(centre.tolist()), radius


def _setup_camera(scene, obj, motion: np.ndarray, view: str) -> None:
    """A camera framing the head. The datasets' convention: the face looks along local +Z, up is +Y."""
    bpy.context.view_layer.update()  # matrix_world of a freshly made object
    centre, radius = _world_bounds(obj, motion)
    rot = obj.matrix_world.to_3x3()
    front = (rot @ Vector((0, 0, 1))).normalized()
    up = (rot @ Vector((0, 1, 0))).normalized()
    if view == "THREE_QUARTER":
        from mathutils import Matrix

        front = (Matrix.Rotation(math.radians(35), 3, up) @ front).normalized()
    cam_data = bpy.data.cameras.new("CodeTalker Camera")
    cam_data.lens = 85.0
    cam_data.clip_start = radius * 0.01
    cam_data.clip_end = radius * 100
    cam = bpy.data.objects.new("CodeTalker Camera", cam_data)
    scene.collection.objects.link(cam)
    fov = min(cam_data.angle_x, cam_data.angle_y) if hasattr(cam_data, "angle_x") else cam_data.angle
    distance = radius / math.tan(fov / 2) * 0.9  # the bounding sphere is wider than the head
    cam.location = centre + front * distance
    cam.rotation_mode = "QUATERNION"
    cam.rotation_quaternion = (-front).to_track_quat("-Z", "Y")
    # keep the head's up as the frame's up
    scene.camera = cam


def _setup_look(scene, obj, engine: str) -> None:
    """Neutral grey material and soft, even light."""
    mat = bpy.data.materials.get("CodeTalker Neutral") or bpy.data.materials.new("CodeTalker Neutral")
    mat.diffuse_color = (0.72, 0.70, 0.68, 1.0)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    if mat.node_tree is not None:
        bsdf = mat.node_tree.nodes.get("Principled BSDF")
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = (0.72, 0.70, 0.68, 1.0)
            bsdf.inputs["Roughness"].default_value = 0.6
    if not obj.data.materials:
        obj.data.materials.append(mat)
    obj.data.polygons.foreach_set("use_smooth", np.ones(len(obj.data.polygons), dtype=bool))
    if engine == "WORKBENCH":
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        scene.display.render_aa = "8"
        return
    world = scene.world or bpy.data.worlds.new("CodeTalker World")
    scene.world = world
    world.color = (0.05, 0.05, 0.05)
    if bpy.app.version < (5, 0, 0):
        world.use_nodes = True
    if world.node_tree is not None:
        bg = world.node_tree.nodes.get("Background")
        if bg is not None:
            bg.inputs["Color"].default_value = (0.25, 0.25, 0.25, 1.0)
            bg.inputs["Strength"].default_value = 0.6
    cam = scene.camera
    for name, offset, energy in (("Key", (0.6, 0.8), 300.0), ("Fill", (-0.8, 0.3), 120.0)):
        light_data = bpy.data.lights.new(f"CodeTalker {name}", "AREA")
        light_data.energy = energy * (cam.location - obj.matrix_world.translation).length ** 2
        light_data.size = 1.0 * (cam.location - obj.matrix_world.translation).length
        light = bpy.data.objects.new(f"CodeTalker {name}", light_data)
        scene.collection.objects.link(light)
        right = cam.matrix_world.to_3x3() @ Vector((1, 0, 0))
        upv = cam.matrix_world.to_3x3() @ Vector((0, 1, 0))
        target = obj.matrix_world.translation
        light.location = cam.location + (right * offset[0] + upv * offset[1]) * (cam.location - target).length
        light.rotation_mode = "QUATERNION"
        light.rotation_quaternion = (target - light.location).to_track_quat("-Z", "Y")


def _setup_output(scene, options: BatchOptions, job: Job, movie: str, frames: int) -> None:
    r = scene.render
    engine = ENGINES.get(options.engine.upper())
    if options.engine.upper() == "EEVEE":
        engine = _eevee_engine()
    if engine is None:
        raise CodeTalkerError(f"unknown engine {options.engine!r}; use WORKBENCH, EEVEE or CYCLES")
    r.engine = engine
    if engine == "CYCLES":
        scene.cycles.samples = options.cycles_samples
        scene.cycles.device = "CPU"
    r.resolution_x, r.resolution_y = options.resolution
    r.resolution_percentage = 100
    if hasattr(r.image_settings, "media_type"):
        r.image_settings.media_type = "VIDEO"
    r.image_settings.file_format = "FFMPEG"
    r.ffmpeg.format = "MPEG4"
    r.ffmpeg.codec = "H264"
    r.ffmpeg.constant_rate_factor = "MEDIUM"
    r.ffmpeg.audio_codec = "AAC"
    r.ffmpeg.audio_channels = "MONO"
    r.ffmpeg.audio_mixrate = 48000
    r.filepath = movie
    r.use_file_extension = False
    if options.burn_in:
        r.use_stamp = True
        for flag in ("use_stamp_date", "use_stamp_time", "use_stamp_render_time", "use_stamp_camera",
                     "use_stamp_lens", "use_stamp_scene", "use_stamp_memory", "use_stamp_hostname",
                     "use_stamp_marker", "use_stamp_filename", "use_stamp_sequencer_strip",
                     "use_stamp_frame_range"):
            if hasattr(r, flag):
                setattr(r, flag, False)
        r.use_stamp_frame = True
        r.use_stamp_time = True  # timecode
        r.use_stamp_note = True
        r.stamp_note_text = job.name + (f"  |  {job.overlay}" if job.overlay else "")
        r.stamp_font_size = max(12, options.resolution[1] // 32)
    scene.frame_start = 1
    last = frames if not options.frame_limit else min(frames, options.frame_limit)
    scene.frame_end = max(1, last)


def setup_render(scene, obj, motion: np.ndarray, options: BatchOptions, job: Job, movie: str, frames: int) -> None:
    """Output (MP4, engine, burn-in, frame range), camera and look for a baked head."""
    _setup_output(scene, options, job, movie, frames)
    _setup_camera(scene, obj, motion, options.camera)
    _setup_look(scene, obj, options.engine.upper())


def _bake(job: Job, options: BatchOptions, obj, progress: Callable[[str, float], None],
          cancel: Callable[[], bool]) -> dict:
    scene = bpy.context.scene
    fps, base = _fps_pair(options.fps)
    scene.render.fps, scene.render.fps_base = fps, base
    spec = BakeSpec(model=options.model, audio_path=job.audio, template=bake.rest_positions(obj),
                    style=_style_vector(job.style or options.style, options.model), blend=options.blend,
                    device=options.device, mode=options.mode, gate=options.gate, scene_fps=bake.scene_fps(scene),
                    compact=options.compact)
    bake_job = BakeJob(spec)
    bake_job.start()
    while bake_job.poll() == "running":
        if cancel():
            bake_job.cancel()
        progress("bake", bake_job.fraction)
        time.sleep(0.05)
    if bake_job.state == "cancelled":
        raise _BatchCancelled()
    if bake_job.state == "failed":
        raise CodeTalkerError(bake_job.error)
    bake.ensure_sound_strip(scene, job.audio, 1)
    info = bake.apply_bake(scene, obj, bake_job.result, 1, extend_range=False)
    info["motion"] = bake_job.result.motion
    info["clip_seconds"] = bake_job.result.info.get("seconds", 0.0)
    info["bake_seconds"] = bake_job.result.seconds
    return info


def _style_vector(style: dict[str, float] | None, source: ModelSource):
    if not style:
        return None
    from ..core.style import style_weights
    from .jobs import load_model_cached

    return style_weights(style, load_model_cached(source).cfg.subjects)


class _BatchCancelled(Exception):
    pass


def render_job(job: Job, options: BatchOptions, progress: Callable[[str, float], None] = lambda s, f: None,
               cancel: Callable[[], bool] = lambda: False) -> JobResult:
    """Bake and render one job; never raises for a job's own problems."""
    movie = os.path.join(options.out_dir, f"{job.output}.mp4")
    blend = os.path.join(options.out_dir, f"{job.output}.blend") if options.save_blend else ""
    result = JobResult(job=job.output, audio=job.audio, status="failed", output=movie, blend=blend)
    if job.error:
        result.error = job.error
        return result
    if os.path.isfile(movie) and not options.force and (not blend or os.path.isfile(blend)):
        result.status = "skipped"
        return result
    partial = os.path.join(options.out_dir, f".{job.output}.partial.mp4")
    try:
        if not os.path.isfile(job.audio):
            raise CodeTalkerError(f"audio file not found: {job.audio}")
        obj = _load_subject(job, options)
        progress("bake", 0.0)
        info = _bake(job, options, obj, progress, cancel)
        scene = bpy.context.scene
        result.clip_seconds, result.frames = info["clip_seconds"], info["frames"]
        result.bake_seconds = info["bake_seconds"]
        # cover the whole sound: the last baked pose holds until the audio ends
        frames = max(info["frames"], math.ceil(result.clip_seconds * bake.scene_fps(scene) - 1e-6))
        setup_render(scene, obj, info["motion"], options, job, partial, frames)
        if blend:
            scene.render.filepath = f"//{job.output}.mp4"
            bpy.ops.file.pack_all()
            bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True, compress=True)
            scene.render.filepath = partial
        progress("render", 0.0)
        t0 = time.perf_counter()
        _render_animation(scene, progress)
        result.render_seconds = time.perf_counter() - t0
        if not os.path.isfile(partial):
            raise CodeTalkerError("the renderer wrote no movie (is FFmpeg support missing from this Blender?)")
        os.replace(partial, movie)
        result.status = "done"
    except _BatchCancelled:
        result.status, result.error = "cancelled", "cancelled"
    except CodeTalkerError as exc:
        result.error = str(exc)
    except Exception as exc:  # keep the batch going; the trace goes to the console
        traceback.print_exc()
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if os.path.isfile(partial):
            os.remove(partial)
    return result


def _render_animation(scene, progress) -> None:
    total = scene.frame_end - scene.frame_start + 1

    def on_frame(scene_, *_):  # a render cannot be stopped from here; cancel acts between jobs
        progress("render", (scene_.frame_current - scene.frame_start + 1) / total)

    bpy.app.handlers.render_post.append(on_frame)
    try:
        bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.app.handlers.render_post.remove(on_frame)


def run_batch(jobs: list[Job] | str, options: BatchOptions, on_progress: Callable[[BatchProgress], None] | None = None,
              cancel: Callable[[], bool] = lambda: False, log: Callable[[str], None] = print) -> list[JobResult]:
    """Run every job; write summary.json and summary.csv; return the results."""
    if isinstance(jobs, str):
        jobs = load_jobs(jobs)
    try:
        os.makedirs(options.out_dir, exist_ok=True)
        for name in os.listdir(options.out_dir):  # left by a killed run
            if name.startswith(".") and name.endswith(".partial.mp4"):
                os.remove(os.path.join(options.out_dir, name))
    except OSError as exc:
        raise CodeTalkerError(f"cannot use the output folder {options.out_dir}: {exc}") from None
    state = BatchProgress(total=len(jobs))
    for i, job in enumerate(jobs, 1):
        state.index, state.job = i, job.output
        if cancel():
            state.results.append(JobResult(job=job.output, audio=job.audio, status="cancelled", error="cancelled"))
            continue
        log(f"[{i}/{len(jobs)}] {job.output}: {os.path.basename(job.audio)}")

        def progress(stage: str, fraction: float, _state=state) -> None:
            _state.stage, _state.fraction = stage, fraction
            if on_progress is not None:
                on_progress(_state)

        result = render_job(job, options, progress, cancel)
        state.results.append(result)
        if result.status == "done":
            log(f"[{i}/{len(jobs)}] {job.output}: done, {result.clip_seconds:.1f}s of audio, "
                f"bake {result.bake_seconds:.1f}s, render {result.render_seconds:.1f}s -> {result.output}")
        elif result.status == "skipped":
            log(f"[{i}/{len(jobs)}] {job.output}: skipped (already rendered; --force to redo)")
        else:
            log(f"[{i}/{len(jobs)}] {job.output}: {result.status.upper()}: {result.error}")
        json_path, _ = write_summary(state.results, options.out_dir)
    if not jobs:
        json_path, _ = write_summary(state.results, options.out_dir)
    counts = {s: sum(r.status == s for r in state.results) for s in ("done", "skipped", "failed", "cancelled")}
    log(f"batch finished: {counts['done']} rendered, {counts['skipped']} skipped, {counts['failed']} failed"
        + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else "") + f"; summary in {json_path}")
    return state.results


# ----------------------------------------------------------------------------- command line


def _resolution(text: str) -> tuple[int, int]:
    if text.upper() in RESOLUTIONS:
        return RESOLUTIONS[text.upper()]
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution must be a preset or WxH, not {text!r}") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError("width and height must be even and at least 16")
    return w, h


def _fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a frame rate: {text!r}") from None
    if not 1.0 <= value <= 240.0:
        raise argparse.ArgumentTypeError("the frame rate must lie between 1 and 240")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="batch_render", description="Batch render dialogue clips to preview movies")
    p.add_argument("--jobs", required=True, help="folder of audio files, or a .csv / .json job list")
    p.add_argument("--out", required=True, help="output folder for the movies and the summary")
    p.add_argument("--mesh", default="", help="default head: template .ply/.obj/.npy, or a .blend")
    p.add_argument("--object", default="", help="default head object name in a .blend")
    p.add_argument("--model", default="", help="our .safetensors model (default: the bundled one for --mesh)")
    p.add_argument("--config", default="", help="published YAML (optional with --stage1/--stage2)")
    p.add_argument("--stage1", default="")
    p.add_argument("--stage2", default="")
    p.add_argument("--dataset", default="", choices=("", "vocaset", "BIWI"),
                   help="published configuration to assume without --config (default: from --mesh)")
    p.add_argument("--style", action="append", default=[], metavar="NAME[=W]", help="default style, repeatable")
    add_blend_argument(p)
    p.add_argument("--engine", default="WORKBENCH", choices=("WORKBENCH", "EEVEE", "CYCLES"))
    p.add_argument("--resolution", default="PREVIEW", type=_resolution,
                   help="TINY (128), PREVIEW (512x512), HD (1280x720), FULL_HD or WxH")
    p.add_argument("--fps", type=_fps, default=24.0, help="24, 25, 30, 23.976, 29.97, 60 ...")
    p.add_argument("--camera", default="FRONT", choices=("FRONT", "THREE_QUARTER"))
    p.add_argument("--no-burn-in", action="store_true", help="no clip name, frame and timecode on the frames")
    p.add_argument("--save-blend", action="store_true", help="also save a self-contained .blend per shot")
    p.add_argument("--force", action="store_true", help="render again even if the movie exists")
    p.add_argument("--device", default="auto")
    p.add_argument("--mode", default="auto", choices=("auto", "exact", "fast"),
                   help="auto: exact up to 600 frames, fast beyond")
    add_gate_arguments(p)
    p.add_argument("--per-frame", action="store_true", help="per-frame shape keys instead of the compact basis")
    p.add_argument("--frame-limit", type=int, default=0, help="render at most N frames per job (quick looks)")
    return p.parse_args(argv)


def options_from_args(argv: list[str]) -> tuple[BatchOptions, argparse.Namespace]:
    """BatchOptions from batch_render.py's command line; raises CodeTalkerError for bad input."""
    from ..core.batch import parse_style
    from ..core.mesh import TOPOLOGY_DATASETS, load_template

    args = parse_args(argv)

    def mesh_vertex_count() -> int | None:
        """Vertices of the --mesh template (None for a .blend head or no mesh)."""
        return len(load_template(args.mesh)) if args.mesh and not args.mesh.endswith(".blend") else None

    if "#" in os.path.abspath(args.out):
        raise CodeTalkerError("the output folder's path must not contain '#' (Blender reads it as a frame number)")
    if args.model:
        source = ModelSource("FILE", model_path=os.path.abspath(args.model))
    elif args.stage2:
        dataset = args.dataset
        if not args.config and not dataset:
            dataset = TOPOLOGY_DATASETS.get(mesh_vertex_count(), "")
            if not dataset:
                raise CodeTalkerError("give --config or --dataset, unless --mesh is a FLAME or BIWI template")
        source = ModelSource("PUBLISHED", config_path=os.path.abspath(args.config) if args.config else "",
                             stage1_path=os.path.abspath(args.stage1) if args.stage1 else "",
                             stage2_path=os.path.abspath(args.stage2), dataset=dataset)
    else:
        from ..core.bundled import bundled_model_for

        path = bundled_model_for(mesh_vertex_count())
        if not path:
            raise CodeTalkerError(
                "no bundled model fits the mesh: give --model, or --stage1 and --stage2 (with --config)"
            )
        source = ModelSource("FILE", model_path=path)
    style = parse_style(";".join(args.style)) if args.style else None
    options = BatchOptions(
        model=source, out_dir=os.path.abspath(args.out), mesh=os.path.abspath(args.mesh) if args.mesh else "",
        object=args.object, style=style, blend=args.blend, engine=args.engine, resolution=args.resolution, fps=args.fps,
        camera=args.camera, burn_in=not args.no_burn_in, save_blend=args.save_blend, force=args.force,
        device=args.device, mode=args.mode, compact=not args.per_frame, frame_limit=args.frame_limit,
        gate=gate_from_args(args),
    )
    return options, args


def main(argv: list[str]) -> int:
    """batch_render.py: 0 when every job was rendered or skipped, 1 when some failed, 2 for bad usage."""
    try:
        options, args = options_from_args(argv)
        jobs = load_jobs(args.jobs)
        results = run_batch(jobs, options, log=lambda line: print(line, flush=True))
    except CodeTalkerError as exc:
        print(f"batch_render: error: {exc}", file=sys.stderr)
        return 2
    return 1 if any(r.status == "failed" for r in results) else 0
