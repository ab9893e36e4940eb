"""CodeTalker for Blender: speech-driven 3D facial animation.

This package is both a Blender extension (``register``/``unregister`` below,
which import the Blender layer lazily) and a plain Python library: the
``core`` subpackage and the command line run without Blender.
"""


def register():
    from .blender import register as _register

    _register()


def unregister():
    from .blender import unregister as _unregister

    _unregister()
