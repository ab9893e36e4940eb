"""The panel's Batch section: run a batch render in a background Blender process.

Rendering needs Blender's main thread, so the batch runs in a separate
``blender -b`` process running batch_render.py; the UI stays responsive, reads
its progress lines, and Cancel ends it. Where Blender has no executable (the
``bpy`` module), the batch runs in this process instead, blocking.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

import bpy

from ..core.errors import CodeTalkerError
from . import deps, ops

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "batch_render.py")
PROGRESS_LINE = re.compile(r"^\[(\d+)/(\d+)\]")


def batch_arguments(context, blend_path: str) -> list[str]:
    """batch_render.py arguments for the scene's settings (the head: ``blend_path`` + active object)."""
    s = context.scene.codetalker
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        raise CodeTalkerError("select the head mesh to animate")
    jobs = ops._abspath(s.batch_jobs)
    out = ops._abspath(s.batch_out)
    if not jobs or not os.path.exists(jobs):
        raise CodeTalkerError("choose a job source: a folder of audio files or a .csv / .json list")
    if not out:
        raise CodeTalkerError("choose an output folder")
    source = ops.model_source(s, len(obj.data.vertices))
    args = ["--jobs", jobs, "--out", out, "--mesh", blend_path, "--object", obj.name,
            "--engine", s.batch_engine, "--resolution", s.batch_resolution, "--camera", s.batch_camera,
            "--fps", f"{context.scene.render.fps / context.scene.render.fps_base:.6g}",
            "--device", s.device.lower(), "--mode", s.quality]
    if source.kind == "FILE":
        args += ["--model", source.model_path]
    else:
        args += ["--stage1", source.stage1_path, "--stage2", source.stage2_path]
        args += ["--config", source.config_path] if source.config_path else ["--dataset", source.dataset]
    if s.styles:
        cfg = ops.model_config(source)
        weights = ops.style_vector(s, cfg.subjects)
        args += [a for name, w in zip(cfg.subjects, weights) if w > 0 for a in ("--style", f"{name}={w:.6g}")]
    args += ["--silence-gate", f"{s.silence_threshold:g}"] if s.rest_in_silence else ["--no-silence-gate"]
    if s.bake_mode == "PER_FRAME":
        args.append("--per-frame")
    if not s.batch_burn_in:
        args.append("--no-burn-in")
    if s.batch_save_blend:
        args.append("--save-blend")
    if s.batch_force:
        args.append("--force")
    return args


class _Runner:
    def __init__(self, cmd: list[str], env: dict, scratch: str):
        self.lines: list[str] = []
        self.scratch = scratch
        env = dict(env, PYTHONIOENCODING="utf-8")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     encoding="utf-8", errors="replace")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())


class CODETALKER_OT_batch_render(bpy.types.Operator):
    """Bake and render every job to a sound-synced preview movie"""

    bl_idname = "codetalker.batch_render"
    bl_label = "Run Batch"

    _runner = None
    _timer = None

    def _prepare(self, context):
        # The head comes from a copy of the current file, so unsaved changes are included.
        scratch = tempfile.mkdtemp(prefix="codetalker-batch-")
        blend = os.path.join(scratch, "scene.blend")
        try:
            args = batch_arguments(context, blend)  # validate before writing anything
            bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return blend, args

    def execute(self, context):
        # In-process and blocking: for the bpy module (no Blender executable) and scripts.
        # Each job loads its own scene; the user's scene comes back from a saved copy.
        from ..core.batch import load_jobs
        from .batch import options_from_args

        original, dirty = bpy.data.filepath, bpy.data.is_dirty
        try:
            blend, args = self._prepare(context)
            options, jobs = options_from_args(args)[0], load_jobs(ops._abspath(context.scene.codetalker.batch_jobs))
        except CodeTalkerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        from .batch import run_batch

        try:
            results = run_batch(jobs, options)
        except CodeTalkerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            # run_batch replaced the open file job by job: come back to the user's file, or to
            # the copy when it had unsaved changes
            restore = original if original and not dirty and os.path.isfile(original) else blend
            bpy.ops.wm.open_mainfile(filepath=restore)
            if restore == blend:
                self.report({"WARNING"}, "The scene was restored from a copy; save it under its own name")
        failed = [r for r in results if r.status == "failed"]
        self.report({"WARNING" if failed else "INFO"},
                    f"Batch: {sum(r.status == 'done' for r in results)} rendered, "
                    f"{sum(r.status == 'skipped' for r in results)} skipped, {len(failed)} failed")
        return {"FINISHED"}

    def invoke(self, context, event):
        if not bpy.app.binary_path:
            return self.execute(context)
        try:
            blend, args = self._prepare(context)
        except CodeTalkerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        env = dict(os.environ)
        try:
            env["CODETALKER_SITE_PACKAGES"] = deps.site_packages_dir(ops.PACKAGE)
        except ValueError:
            pass
        cmd = [bpy.app.binary_path, "-b", "--factory-startup", "-P", SCRIPT, "--", *args]
        self._runner = _Runner(cmd, env, os.path.dirname(blend))
        state = context.window_manager.codetalker_state
        state.batch_running, state.batch_progress, state.batch_status = True, 0.0, "Starting..."
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        state = context.window_manager.codetalker_state
        if not state.batch_running and self._runner.proc.poll() is None:  # the Cancel button
            self._runner.proc.terminate()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for line in reversed(self._runner.lines):
            m = PROGRESS_LINE.match(line)
            if m:
                done, total = int(m.group(1)), int(m.group(2))
                state.batch_progress = (done - 1 + (0.5 if "done" not in line else 1.0)) / total
                state.batch_status = line[:100]
                break
        ops._redraw(context)
        code = self._runner.proc.poll()
        if code is None:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        shutil.rmtree(self._runner.scratch, ignore_errors=True)
        state.batch_running = False
        last = self._runner.lines[-1] if self._runner.lines else ""
        state.batch_status = last[:100]
        if code == 0:
            self.report({"INFO"}, last or "Batch finished")
        elif code < 0:
            self.report({"WARNING"}, "Batch cancelled")
        else:
            self.report({"ERROR"}, last or f"Batch failed (exit {code}); see the console")
            print("\n".join(self._runner.lines[-40:]), file=sys.stderr)
        return {"FINISHED"}

    def cancel(self, context):
        # Blender ends the modal itself (a file is loaded, the window closes): end the batch too.
        self._runner.proc.terminate()
        context.window_manager.event_timer_remove(self._timer)
        shutil.rmtree(self._runner.scratch, ignore_errors=True)
        context.window_manager.codetalker_state.batch_running = False


class CODETALKER_OT_batch_cancel(bpy.types.Operator):
    """Stop the running batch (the movie being rendered is discarded)"""

    bl_idname = "codetalker.batch_cancel"
    bl_label = "Cancel Batch"

    def execute(self, context):
        context.window_manager.codetalker_state.batch_running = False
        return {"FINISHED"}


CLASSES = (CODETALKER_OT_batch_render, CODETALKER_OT_batch_cancel)
