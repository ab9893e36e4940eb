"""Operators. They gather input on the main thread, hand the work to the core
(in a worker thread for the bake) and turn domain errors into reports."""

from __future__ import annotations

import math
import os
import time

import bpy
import numpy as np
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.audio import silence_gate
from ..core.errors import CodeTalkerError
from ..core.mesh import TOPOLOGY_DATASETS
from . import bake, deps
from .jobs import BakeJob, BakeSpec, ModelSource

PACKAGE = __package__.rpartition(".")[0]  # the extension package (bl_ext.<repo>.<id> when installed)
ADDON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ACTIVE_JOB: BakeJob | None = None


def bundled_model_path(vertex_count: int | None = None) -> str:
    """The bundled model for the mesh's topology ('' when none fits)."""
    from ..core.bundled import bundled_model_for

    return bundled_model_for(vertex_count)


def _abspath(path: str) -> str:
    return os.path.abspath(bpy.path.abspath(path)) if path else ""


def model_source(settings, vertex_count: int | None) -> ModelSource:
    """The model the settings describe; raises CodeTalkerError when incomplete."""
    kind = settings.model_source
    if kind == "BUNDLED":
        path = bundled_model_path(vertex_count)
        if not path:
            raise CodeTalkerError(
                f"no bundled model fits a mesh of {vertex_count} vertices (FLAME 5023 or BIWI 23370); "
                "choose Published or File" if vertex_count else "no bundled model is installed; choose Published or File"
            )
        return ModelSource("FILE", model_path=path)
    if kind == "FILE":
        path = _abspath(settings.model_path)
        if not path:
            raise CodeTalkerError("choose a model file (.safetensors)")
        if not os.path.isfile(path):
            raise CodeTalkerError(f"model file not found: {path}")
        return ModelSource("FILE", model_path=path)
    stage1, stage2, config = (_abspath(settings.stage1_path), _abspath(settings.stage2_path),
                              _abspath(settings.config_path))
    for label, path in (("stage-2", stage2), ("stage-1", stage1)):
        if not path:
            raise CodeTalkerError(f"choose the {label} checkpoint (.pth.tar)")
        if not os.path.isfile(path):
            raise CodeTalkerError(f"{label} checkpoint not found: {path}")
    if config and not os.path.isfile(config):
        raise CodeTalkerError(f"config file not found: {config}")
    dataset = ""
    if not config:
        dataset = TOPOLOGY_DATASETS.get(vertex_count or 0, "")
        if not dataset:
            raise CodeTalkerError(
                f"without a config the mesh must be FLAME (5023 vertices) or BIWI (23370); it has {vertex_count}"
            )
    return ModelSource("PUBLISHED", config_path=config, stage1_path=stage1, stage2_path=stage2, dataset=dataset)


def model_config(source: ModelSource):
    """The config of ``source`` without loading weights (fast, no torch needed)."""
    from ..core import config as config_mod

    if source.kind == "FILE":
        return config_mod.config_from_model_file(source.model_path)
    if source.config_path:
        return config_mod.load_config(source.config_path)[0]
    return config_mod.published_config(source.dataset)


def refresh_styles(settings, subjects) -> None:
    """Make the style sliders name ``subjects``, keeping weights of names that stay."""
    old = {s.name: s.weight for s in settings.styles}
    if list(old) == list(subjects):
        return
    settings.styles.clear()
    for name in subjects:
        item = settings.styles.add()
        item.name = name
        item.weight = old.get(name, 1.0)
    if settings.style_a not in subjects:
        settings.style_a = subjects[0]
    if settings.style_b not in subjects:
        settings.style_b = subjects[min(1, len(subjects) - 1)]


def style_vector(settings, subjects) -> np.ndarray:
    from ..core.style import style_weights, two_style

    if settings.style_mode == "AB":
        return two_style(settings.style_a, settings.style_b, settings.style_blend, subjects)
    weights = {s.name: s.weight for s in settings.styles}
    if not any(weights.get(n, 0.0) > 0 for n in subjects):
        raise CodeTalkerError("all style weights are zero: raise at least one slider")
    return style_weights([weights.get(n, 0.0) for n in subjects], subjects)


def style_runs(settings) -> int:
    """How many model runs the style settings take: one, or with Mix Motions one per style with a weight."""
    if settings.blend_method == "MODEL":
        return 1
    try:
        return int(np.count_nonzero(style_vector(settings, [s.name for s in settings.styles])))
    except CodeTalkerError:  # no weight at all (the bake says so) or an A/B style not in the list
        return 1


def audio_input(scene, settings) -> tuple[str, int]:
    """(audio file path, start frame) from the settings."""
    if settings.audio_source == "STRIP":
        strip = next((s for s in bake.sound_strips(scene) if s.name == settings.sound_strip), None)
        if strip is None:
            raise CodeTalkerError("choose a sound strip (the scene's sequencer has none by that name)")
        path = bake.strip_audio_path(strip)
        start = int(strip.frame_start)
    else:
        path = _abspath(settings.audio_path)
        start = settings.start_frame
        if not path:
            raise CodeTalkerError("choose a speech file")
    if not os.path.isfile(path):
        raise CodeTalkerError(f"audio file not found: {path}")
    return path, start


def build_spec(context) -> tuple[BakeSpec, object, int]:
    """Everything the worker needs, read from the scene: (spec, mesh object, start frame)."""
    scene = context.scene
    settings = scene.codetalker
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        raise CodeTalkerError("select the head mesh to animate (FLAME: 5023 vertices, BIWI: 23370)")
    missing = deps.missing()
    if missing:
        raise CodeTalkerError(f"missing Python packages: {', '.join(missing)}; install them in the preferences")
    count = len(obj.data.vertices)
    source = model_source(settings, count)
    cfg = model_config(source)
    if cfg.num_vertices != count:
        raise CodeTalkerError(
            f"'{obj.name}' has {count} vertices but the model expects {cfg.num_vertices} "
            f"({bake.describe_topology(cfg.num_vertices)}); FLAME meshes have 5023, BIWI meshes 23370"
        )
    refresh_styles(settings, cfg.subjects)
    audio, start = audio_input(scene, settings)
    spec = BakeSpec(
        model=source, audio_path=audio, template=bake.rest_positions(obj),
        style=style_vector(settings, cfg.subjects), blend=settings.blend_method.lower(),
        device=settings.device.lower(), mode=settings.quality,
        gate=silence_gate(settings.rest_in_silence, settings.silence_threshold),
        scene_fps=bake.scene_fps(scene), compact=settings.bake_mode == "COMPACT",
        error_bound=settings.error_bound,
    )
    return spec, obj, start


def finish_bake(context, job: BakeJob, obj_name: str, start: int, report) -> set:
    """Apply a finished job to the scene (main thread); report cancel or failure."""
    state = context.window_manager.codetalker_state
    state.running = False
    state.progress = 0.0
    if job.state == "cancelled":
        state.status = "Bake cancelled; the scene is unchanged"
        report({"WARNING"}, state.status)
        return {"CANCELLED"}
    if job.state == "failed":
        state.status = job.error
        report({"ERROR"}, job.error)
        return {"CANCELLED"}
    scene = context.scene
    obj = bpy.data.objects.get(obj_name)
    if obj is None or obj.type != "MESH":
        report({"ERROR"}, f"the object '{obj_name}' is gone (renamed or deleted); nothing was baked")
        return {"CANCELLED"}
    if len(obj.data.vertices) != len(job.spec.template):
        report({"ERROR"}, f"'{obj_name}' changed while baking ({len(obj.data.vertices)} vertices now, "
                          f"{len(job.spec.template)} before); nothing was baked")
        return {"CANCELLED"}
    if obj.mode != "OBJECT":
        report({"ERROR"}, f"'{obj_name}' is in {obj.mode.replace('_', ' ').title()} Mode; "
                          "switch to Object Mode and bake again")
        return {"CANCELLED"}
    settings = scene.codetalker
    sound_note = ""
    if settings.audio_source == "FILE":
        try:
            bake.ensure_sound_strip(scene, job.spec.audio_path, start)
        except RuntimeError as exc:  # e.g. a Blender build without audio support, or no free channel
            sound_note = f"; no sound strip added ({str(exc).removeprefix('Error: ').strip()})"
            report({"WARNING"}, f"Could not add the sound strip: {exc}")
    t0 = time.perf_counter()
    try:
        info = bake.apply_bake(scene, obj, job.result, start, settings.extend_frame_range)
    except (RuntimeError, ValueError, TypeError) as exc:  # Blender refused a write: leave no half bake
        bake.clear_bake(obj)
        report({"ERROR"}, f"Writing the bake failed, nothing was baked: {exc}")
        return {"CANCELLED"}
    write = time.perf_counter() - t0
    # One undo step for the whole bake (strip, keys, animation). Pushed here rather
    # than through bl_options so that the modal and the direct paths behave alike.
    bpy.ops.ed.undo_push(message="CodeTalker Bake")
    detail = (f"{info['keys']} basis keys, max error {info['max_error']:.3g}" if info["mode"] == "compact"
              else f"{info['keys']} per-frame keys")
    rest = job.result.info.get("rest_seconds", 0.0)
    rest_note = f"; at rest in silence for {rest:.1f}s" if rest > 0 else ""
    state.status = (f"Baked {info['frames']} frames at {info['fps']:.3g} fps ({detail}); "
                    f"model {job.result.seconds:.1f}s ({job.result.info.get('mode', '?')} inference), "
                    f"write {write:.2f}s{rest_note}{sound_note}")
    report({"INFO"}, state.status)
    return {"FINISHED"}


class CODETALKER_OT_bake(bpy.types.Operator):
    """Animate the active mesh from speech and bake it into shape keys"""

    bl_idname = "codetalker.bake"
    bl_label = "Bake Speech Animation"
    bl_options = {"REGISTER"}

    _timer = None

    @classmethod
    def poll(cls, context):
        return ACTIVE_JOB is None or not ACTIVE_JOB.busy

    def _start(self, context) -> bool:
        global ACTIVE_JOB
        try:
            spec, obj, start = build_spec(context)
        except CodeTalkerError as exc:
            self.report({"ERROR"}, str(exc))
            return False
        self._obj_name, self._start_frame = obj.name, start
        ACTIVE_JOB = BakeJob(spec)
        ACTIVE_JOB.start()
        state = context.window_manager.codetalker_state
        state.running, state.progress, state.status = True, 0.0, "Loading model..."
        return True

    def execute(self, context):
        # Scripts, tests and background mode: the same job, waited on here.
        if not self._start(context):
            return {"CANCELLED"}
        ACTIVE_JOB.wait()
        return finish_bake(context, ACTIVE_JOB, self._obj_name, self._start_frame, self.report)

    def invoke(self, context, event):
        if not self._start(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = ACTIVE_JOB
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = context.window_manager.codetalker_state
        if job.poll() == "running":
            state.progress = job.fraction
            if job.total_frames:
                eta = job.eta
                state.status = (f"Frame {job.done_frames}/{job.total_frames}"
                                + (f", about {eta:.0f}s left" if eta is not None else ""))
            _redraw(context)
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        result = finish_bake(context, job, self._obj_name, self._start_frame, self.report)
        _redraw(context)
        return result

    def cancel(self, context):
        # Blender ends the modal itself (a file is loaded, the window closes): stop the job too.
        if ACTIVE_JOB is not None:
            ACTIVE_JOB.cancel()
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
        state = context.window_manager.codetalker_state
        state.running, state.progress, state.status = False, 0.0, "Bake cancelled; the scene is unchanged"


def _redraw(context):
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


class CODETALKER_OT_cancel(bpy.types.Operator):
    """Stop the running bake; the scene stays as it was"""

    bl_idname = "codetalker.cancel"
    bl_label = "Cancel Bake"

    @classmethod
    def poll(cls, context):
        return ACTIVE_JOB is not None and ACTIVE_JOB.busy

    def execute(self, context):
        ACTIVE_JOB.cancel()
        return {"FINISHED"}


class CODETALKER_OT_clear(bpy.types.Operator):
    """Remove CodeTalker's shape keys and animation from the active mesh (yours stay)"""

    bl_idname = "codetalker.clear"
    bl_label = "Remove Bake"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return bake.bake_info(context.active_object) is not None

    def execute(self, context):
        n = bake.clear_bake(context.active_object)
        self.report({"INFO"}, f"Removed {n} CodeTalker shape keys")
        return {"FINISHED"}


class CODETALKER_OT_refresh_styles(bpy.types.Operator):
    """Read the model's training subjects into the style sliders"""

    bl_idname = "codetalker.refresh_styles"
    bl_label = "Read Styles From Model"

    def execute(self, context):
        settings = context.scene.codetalker
        obj = context.active_object
        count = len(obj.data.vertices) if obj is not None and obj.type == "MESH" else None
        try:
            cfg = model_config(model_source(settings, count))
        except CodeTalkerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        refresh_styles(settings, cfg.subjects)
        return {"FINISHED"}


class CODETALKER_OT_reset_styles(bpy.types.Operator):
    """Blend all speaker styles equally again"""

    bl_idname = "codetalker.reset_styles"
    bl_label = "Reset Styles"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.codetalker
        for item in settings.styles:
            item.weight = 1.0
        settings.style_blend = 0.5
        return {"FINISHED"}


class CODETALKER_OT_import_template(bpy.types.Operator, ImportHelper):
    """Import a template head mesh (.ply, .obj or .npy vertex array)"""

    bl_idname = "codetalker.import_template"
    bl_label = "Import Template Mesh"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.ply;*.obj;*.npy", options={"HIDDEN"})

    def execute(self, context):
        from ..core.mesh import load_mesh

        try:
            verts, faces = load_mesh(self.filepath)
        except CodeTalkerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        name = os.path.splitext(os.path.basename(self.filepath))[0]
        obj = create_mesh_object(context, name, verts, faces, y_up=True)
        self.report({"INFO"}, f"Imported {name}: {len(verts)} vertices ({bake.describe_topology(len(verts))})")
        return {"FINISHED"} if obj else {"CANCELLED"}


def create_mesh_object(context, name: str, verts: np.ndarray, faces, y_up: bool = False) -> object:
    """A new mesh object, linked and made active. ``y_up``: the data is Y-up, face along +Z
    (FLAME and BIWI), so the object is turned upright in Blender's Z-up world."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(verts, dtype=np.float32).ravel())
    if faces is not None and len(faces):
        sizes = np.array([len(f) for f in faces], dtype=np.int32)
        corners = np.concatenate([np.asarray(f, dtype=np.int32).ravel() for f in faces])
        mesh.loops.add(len(corners))
        mesh.loops.foreach_set("vertex_index", corners)
        mesh.polygons.add(len(sizes))
        mesh.polygons.foreach_set("loop_start", np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32))
        if not bpy.types.MeshPolygon.bl_rna.properties["loop_total"].is_readonly:  # older Blender
            mesh.polygons.foreach_set("loop_total", sizes)
    mesh.update(calc_edges=True)
    mesh.validate(verbose=False)
    obj = bpy.data.objects.new(name, mesh)
    if y_up:
        obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    context.collection.objects.link(obj)
    for other in context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj


class CODETALKER_OT_install_dependencies(bpy.types.Operator):
    """Install torch, transformers and librosa with pip into the extension's user folder"""

    bl_idname = "codetalker.install_dependencies"
    bl_label = "Install Dependencies"

    variant: EnumProperty(name="Build", items=[("CPU", "CPU", "Smaller; runs everywhere"),
                                               ("CUDA", "CUDA", "NVIDIA GPUs (large download)"),
                                               ("DEFAULT", "Default", "pip's default torch build")],
                          default="CPU")
    _timer = None
    _installer = None

    def _begin(self, context) -> bool:
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Online access is disabled (Preferences > System > Network > Allow Online "
                                   "Access); enable it to download the dependencies, or install them yourself")
            return False
        try:
            target = deps.site_packages_dir(PACKAGE, create=True)
        except ValueError:
            self.report({"ERROR"}, "this add-on is not installed as an extension; install its packages with pip")
            return False
        self._installer = deps.Installer(deps.pip_commands(target, self.variant))
        _INSTALL_LOG[:] = []
        self._installer.log = _INSTALL_LOG
        self._installer.start()
        return True

    def execute(self, context):
        if not self._begin(context):
            return {"CANCELLED"}
        while not self._installer.done:
            time.sleep(0.2)
        return self._end(context)

    def invoke(self, context, event):
        if not self._begin(context):
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()
        if not self._installer.done:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        return self._end(context)

    def _end(self, context):
        if self._installer.error:
            self.report({"ERROR"}, self._installer.error)
            return {"CANCELLED"}
        deps.add_to_path(PACKAGE)
        deps.status(refresh=True)
        self.report({"INFO"}, "Dependencies installed")
        return {"FINISHED"}


_INSTALL_LOG: list[str] = []


def install_log() -> list[str]:
    return _INSTALL_LOG


CLASSES = (
    CODETALKER_OT_bake,
    CODETALKER_OT_cancel,
    CODETALKER_OT_clear,
    CODETALKER_OT_refresh_styles,
    CODETALKER_OT_reset_styles,
    CODETALKER_OT_import_template,
    CODETALKER_OT_install_dependencies,
)
