"""Sidebar panel (3D Viewport > Sidebar > CodeTalker) and add-on preferences."""

from __future__ import annotations

import bpy

from . import bake, deps, ops


def _progress(layout, factor: float, text: str) -> None:
    if hasattr(layout, "progress"):  # Blender 4.0+
        layout.progress(factor=factor, type="BAR", text=text)
    else:
        layout.label(text=f"{text} ({factor:.0%})")


class CODETALKER_PT_main(bpy.types.Panel):
    bl_label = "CodeTalker"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "CodeTalker"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.codetalker
        state = context.window_manager.codetalker_state

        missing = deps.missing()
        if missing:
            box = layout.box()
            box.label(text="Python packages missing:", icon="ERROR")
            box.label(text=", ".join(missing))
            box.label(text="Install them in Preferences > Add-ons > CodeTalker.")
            box.operator("codetalker.install_dependencies", icon="IMPORT")

        box = layout.box()
        box.label(text="Audio", icon="SPEAKER")
        box.row().prop(settings, "audio_source", expand=True)
        if settings.audio_source == "FILE":
            box.prop(settings, "audio_path", text="")
            box.prop(settings, "start_frame")
        elif scene.sequence_editor is not None:
            collection = "strips" if hasattr(scene.sequence_editor, "strips") else "sequences_all"
            box.prop_search(settings, "sound_strip", scene.sequence_editor, collection, text="")
        else:
            box.label(text="The scene has no sound strips", icon="INFO")

        box = layout.box()
        box.label(text="Mesh", icon="MESH_DATA")
        obj = context.active_object
        if obj is not None and obj.type == "MESH":
            n = len(obj.data.vertices)
            known = n in ops.TOPOLOGY_DATASETS
            box.label(text=f"{obj.name}: {bake.topology_label(obj)}", icon="CHECKMARK" if known else "QUESTION")
            if not known:
                box.label(text="Expected FLAME (5023) or BIWI (23370) vertices")
        else:
            box.label(text="Select a FLAME or BIWI head mesh", icon="ERROR")
        box.operator("codetalker.import_template", icon="IMPORT")

        box = layout.box()
        box.label(text="Model", icon="NETWORK_DRIVE")
        box.row().prop(settings, "model_source", expand=True)
        if settings.model_source == "BUNDLED":
            count = len(obj.data.vertices) if obj is not None and obj.type == "MESH" else None
            path = ops.bundled_model_path(count)
            box.label(text=bpy.path.basename(path) if path else "No bundled model for this mesh", icon="PACKAGE")
        elif settings.model_source == "FILE":
            box.prop(settings, "model_path", text="")
        else:
            box.prop(settings, "stage1_path")
            box.prop(settings, "stage2_path")
            box.prop(settings, "config_path")
        row = box.row()
        row.prop(settings, "device")
        row.prop(settings, "quality", text="")
        row = box.row()
        row.prop(settings, "rest_in_silence")
        sub = row.row()
        sub.active = settings.rest_in_silence
        sub.prop(settings, "silence_threshold", text="dB")
        if not missing and deps.status_known():  # never import torch inside draw()
            avail = deps.status()
            found = [name for name in ("cuda", "mps") if avail.get(name)]
            box.label(text="Available: CPU" + "".join(f", {n.upper()}" for n in found))

        box = layout.box()
        row = box.row()
        row.label(text="Style", icon="USER")
        row.operator("codetalker.refresh_styles", text="", icon="FILE_REFRESH")
        row.operator("codetalker.reset_styles", text="", icon="LOOP_BACK")
        box.row().prop(settings, "style_mode", expand=True)
        if not settings.styles:
            box.label(text="Press refresh to read the model's speakers")
        elif settings.style_mode == "MIX":
            col = box.column(align=True)
            for item in settings.styles:
                col.prop(item, "weight", text=item.name, slider=True)
        else:
            box.prop_search(settings, "style_a", settings, "styles")
            box.prop_search(settings, "style_b", settings, "styles")
            box.prop(settings, "style_blend", slider=True)
        if settings.styles:
            box.row().prop(settings, "blend_method", expand=True)
            runs = ops.style_runs(settings)
            if runs > 1:
                box.label(text=f"{runs} model runs, one per style", icon="INFO")

        box = layout.box()
        box.label(text="Bake", icon="SHAPEKEY_DATA")
        box.row().prop(settings, "bake_mode", expand=True)
        if settings.bake_mode == "COMPACT":
            box.prop(settings, "error_bound")
        box.prop(settings, "extend_frame_range")
        if state.running:
            _progress(box, state.progress, state.status or "Working...")
            box.operator("codetalker.cancel", icon="CANCEL")
            box.label(text="Esc also cancels")
        else:
            box.operator("codetalker.bake", icon="PLAY")
            if state.status:
                box.label(text=state.status)
        info = bake.bake_info(obj)
        if info:
            box.label(text=f"Baked: {info['frames']} frames from {info['start_frame']}, "
                           f"{info['keys']} keys ({info['mode']})")
            box.operator("codetalker.clear", icon="TRASH")


class CODETALKER_PT_batch(bpy.types.Panel):
    bl_label = "Batch Render"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "CodeTalker"
    bl_parent_id = "CODETALKER_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.codetalker
        state = context.window_manager.codetalker_state
        layout.label(text="Clips to preview movies, with this head and model")
        layout.prop(settings, "batch_jobs")
        layout.prop(settings, "batch_out")
        row = layout.row()
        row.prop(settings, "batch_engine", text="")
        row.prop(settings, "batch_resolution", text="")
        layout.row().prop(settings, "batch_camera", expand=True)
        row = layout.row()
        row.prop(settings, "batch_burn_in")
        row.prop(settings, "batch_save_blend")
        layout.prop(settings, "batch_force")
        if state.batch_running:
            _progress(layout, state.batch_progress, state.batch_status or "Working...")
            layout.operator("codetalker.batch_cancel", icon="CANCEL")
        else:
            layout.operator("codetalker.batch_render", icon="RENDER_ANIMATION")
            if state.batch_status:
                layout.label(text=state.batch_status)


class CODETALKER_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ops.PACKAGE

    def draw(self, context):
        layout = self.layout
        info = deps.status()  # imports torch once, when the preferences are first shown
        col = layout.column()
        if info["missing"]:
            col.label(text="Missing: " + ", ".join(info["missing"]), icon="ERROR")
        if info["torch"]:
            col.label(text=f"torch {info['torch']}", icon="CHECKMARK")
            col.label(text=f"CUDA: {'yes, ' + info['cuda_device'] if info['cuda'] else 'no'}")
            col.label(text=f"MPS: {'yes' if info['mps'] else 'no'}")
        if info.get("torch_error"):
            col.label(text=info["torch_error"], icon="ERROR")
        if not bpy.app.online_access:
            col.label(text="Online access is off: allow it to install packages here", icon="INFO")
        row = col.row()
        row.operator("codetalker.install_dependencies", text="Install (CPU)").variant = "CPU"
        row.operator("codetalker.install_dependencies", text="Install (CUDA)").variant = "CUDA"
        log = ops.install_log()
        if log:
            box = col.box()
            for line in log[-12:]:
                box.label(text=line[:120])


CLASSES = (CODETALKER_PT_main, CODETALKER_PT_batch, CODETALKER_AP_preferences)
