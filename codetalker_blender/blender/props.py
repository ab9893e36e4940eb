"""Properties: per-scene settings (saved in the .blend) and per-window bake state."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..core.audio import DEFAULT_SILENCE_DB


class CODETALKER_PG_style(bpy.types.PropertyGroup):
    # ``name`` (inherited) is the training subject
    weight: FloatProperty(name="Weight", min=0.0, max=1.0, default=0.0,
                          description="How much of this speaker's style to use")


class CODETALKER_PG_settings(bpy.types.PropertyGroup):
    audio_source: EnumProperty(
        name="Audio", items=[("FILE", "File", "A speech file on disk"),
                             ("STRIP", "Sound Strip", "A sound strip of the scene's sequencer")], default="FILE")
    audio_path: StringProperty(name="Speech File", subtype="FILE_PATH",
                               description="wav, flac, ogg or mp3; any sample rate")
    sound_strip: StringProperty(name="Sound Strip", description="Sound strip to animate")
    start_frame: IntProperty(name="Start Frame", default=1,
                             description="Frame where the speech (and the animation) starts")

    model_source: EnumProperty(
        name="Model",
        items=[("BUNDLED", "Bundled", "The model that ships with the extension for the mesh's topology"),
               ("PUBLISHED", "Published", "Published CodeTalker checkpoints (vocaset or BIWI)"),
               ("FILE", "File", "A model in our safetensors format")],
        default="BUNDLED")
    stage1_path: StringProperty(name="Stage 1", subtype="FILE_PATH", description="Stage-1 (VQ autoencoder) .pth.tar")
    stage2_path: StringProperty(name="Stage 2", subtype="FILE_PATH", description="Stage-2 (predictor) .pth.tar")
    config_path: StringProperty(name="Config", subtype="FILE_PATH",
                                description="Published stage2.yaml/demo.yaml (optional: the published "
                                            "configuration matching the mesh is assumed)")
    model_path: StringProperty(name="Model File", subtype="FILE_PATH", description="Our .safetensors model")

    device: EnumProperty(name="Device", items=[("AUTO", "Auto", "CUDA, then MPS, then CPU"),
                                               ("CPU", "CPU", ""), ("CUDA", "CUDA", "NVIDIA GPU"),
                                               ("MPS", "MPS", "Apple GPU")], default="AUTO")
    quality: EnumProperty(name="Inference",
                          items=[("auto", "Auto", "Exact up to 600 frames (20 s at 30 fps), Fast beyond"),
                                 ("exact", "Exact", "The published algorithm: time grows with the square of the length"),
                                 ("fast", "Fast", "Bounded windows: linear time, approximate")],
                          default="auto")

    rest_in_silence: BoolProperty(name="Rest in Silence", default=True,
                                  description="Hold the face at rest in pauses of over 0.4 s (breaths and room "
                                              "noise can otherwise move the mouth there)")
    silence_threshold: FloatProperty(name="Threshold", min=-60.0, max=-3.0, default=DEFAULT_SILENCE_DB, precision=0,
                                     description="Decibels under the clip's speech level below which a pause "
                                                 "counts as silence (lower it if quiet speech is held still)")

    styles: CollectionProperty(type=CODETALKER_PG_style)
    styles_model: StringProperty(description="Model the style list was read from")
    style_mode: EnumProperty(name="Style", items=[("MIX", "Mix", "Blend any number of speaker styles"),
                                                  ("AB", "A/B", "Interpolate between two styles")], default="MIX")
    style_a: StringProperty(name="A")
    style_b: StringProperty(name="B")
    style_blend: FloatProperty(name="A Weight", min=0.0, max=1.0, default=0.5, subtype="FACTOR",
                               description="w in w*A + (1-w)*B")
    blend_method: EnumProperty(
        name="Blend", default="MODEL",
        items=[("MODEL", "In Model", "One run with the blended style: the model's own interpolation. "
                                     "Nearby weights can give a different performance"),
               ("MOTION", "Mix Motions", "One run per style, the motions mixed by weight: smooth and "
                                         "monotonic in the weights, one run per style")])

    bake_mode: EnumProperty(
        name="Bake", items=[("COMPACT", "Compact", "A few basis shape keys with one F-curve each"),
                            ("PER_FRAME", "Per Frame", "One shape key per frame (exact, heavy)")],
        default="COMPACT")
    error_bound: FloatProperty(name="Max Error", min=0.0, default=0.0, precision=5, subtype="DISTANCE",
                               description="Largest vertex error of the compact basis, in the mesh's units "
                                           "(0: automatic, 0.1 mm on a FLAME head in metres and the same "
                                           "fraction of any other head's size)")
    extend_frame_range: BoolProperty(name="Extend Frame Range", default=True,
                                     description="Make the scene long enough for the whole animation")

    batch_jobs: StringProperty(name="Jobs", subtype="FILE_PATH",
                               description="A folder of audio files, or a .csv / .json job list")
    batch_out: StringProperty(name="Output", subtype="DIR_PATH", description="Folder for movies and the summary")
    batch_engine: EnumProperty(name="Engine", items=[("WORKBENCH", "Workbench", "Fast previews"),
                                                     ("EEVEE", "EEVEE", "Quality, GPU"),
                                                     ("CYCLES", "Cycles", "Quality, slow")], default="WORKBENCH")
    batch_resolution: EnumProperty(name="Resolution", items=[("PREVIEW", "512 x 512", ""),
                                                             ("HD", "1280 x 720", ""),
                                                             ("FULL_HD", "1920 x 1080", "")], default="PREVIEW")
    batch_camera: EnumProperty(name="Camera", items=[("FRONT", "Front", ""),
                                                     ("THREE_QUARTER", "Three-Quarter", "")], default="FRONT")
    batch_burn_in: BoolProperty(name="Burn-in", default=True, description="Clip name, frame number and timecode")
    batch_save_blend: BoolProperty(name="Save .blend per Shot", default=False,
                                   description="Self-contained shots for a render farm (blender -b shot.blend -a)")
    batch_force: BoolProperty(name="Re-render Finished", default=False)


class CODETALKER_PG_state(bpy.types.PropertyGroup):
    """Transient bake state shown by the panel (window manager: not saved)."""

    running: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(default="")
    last_report: StringProperty(default="")
    batch_running: BoolProperty(default=False)
    batch_progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    batch_status: StringProperty(default="")


CLASSES = (CODETALKER_PG_style, CODETALKER_PG_settings, CODETALKER_PG_state)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.codetalker = PointerProperty(type=CODETALKER_PG_settings)
    bpy.types.WindowManager.codetalker_state = PointerProperty(type=CODETALKER_PG_state)


def unregister():
    del bpy.types.WindowManager.codetalker_state
    del bpy.types.Scene.codetalker
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
