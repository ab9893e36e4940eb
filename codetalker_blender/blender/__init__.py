"""The Blender layer: properties, operators, panel, preferences, baking.

Imported only inside Blender (``bpy``). The worker thread code it uses
(jobs.py) and everything in ``core`` never touch ``bpy``.
"""

from __future__ import annotations

import bpy

from . import batch_ops, deps, ops, props, ui

CLASSES = ops.CLASSES + batch_ops.CLASSES + ui.CLASSES


def register():
    deps.add_to_path(ops.PACKAGE)
    props.register()
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    job = ops.ACTIVE_JOB
    if job is not None and job.state == "running":
        job.cancel()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    props.unregister()
