"""The models that ship with the extension, found by topology.

They live in ``models/`` beside the package (the extension zip) or at the
repository root (a development checkout). Only file headers are read, and
each file's topology is cached per version (mtime), so this is cheap enough
for drawing a panel.
"""

from __future__ import annotations

import functools
import glob
import os

from .config import config_from_model_file
from .errors import ConfigError

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIRS = (os.path.join(_PACKAGE_DIR, "models"), os.path.join(os.path.dirname(_PACKAGE_DIR), "models"))


@functools.lru_cache(maxsize=64)
def _vertex_count(path: str, mtime: float) -> int | None:
    """Topology of a model file, read once per version of the file (panels redraw often)."""
    try:
        return config_from_model_file(path).num_vertices
    except ConfigError:
        return None


def bundled_models() -> dict[int, str]:
    """Vertex count -> path of the bundled model for that topology."""
    found: dict[int, str] = {}
    for folder in MODEL_DIRS:
        for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
            try:
                count = _vertex_count(path, os.path.getmtime(path))
            except OSError:
                continue
            if count is not None:
                found.setdefault(count, path)
    return found


def bundled_model_for(num_vertices: int | None) -> str:
    """The bundled model for a mesh of ``num_vertices`` (FLAME when unknown), or ''."""
    models = bundled_models()
    if num_vertices is None:
        return models.get(5023, next(iter(models.values()), ""))
    return models.get(num_vertices, "")
