"""Template meshes: ``.npy`` (V*3 or V x 3), ``.ply`` (ASCII or binary) and ``.obj``.

Only vertex positions are read; faces are not needed by the model.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import TemplateError

KNOWN_TOPOLOGIES = {5023: "FLAME (vocaset)", 23370: "BIWI"}
# The published dataset whose configuration fits each known topology.
TOPOLOGY_DATASETS = {5023: "vocaset", 23370: "BIWI"}

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _read_ply(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertex positions (V, 3) and, when they are all triangles, faces (F, 3)."""
    with open(path, "rb") as fh:
        if fh.readline().strip() != b"ply":
            raise TemplateError(f"{path} is not a PLY file")
        fmt, vertex_count, props, in_vertex = None, None, [], False
        face_count, face_types, element = 0, None, None
        while True:
            line = fh.readline()
            if not line:
                raise TemplateError(f"{path}: PLY header has no end_header")
            words = line.decode("ascii", "replace").split()
            if not words:
                continue
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                element = words[1]
                in_vertex = element == "vertex"
                if in_vertex:
                    vertex_count = int(words[2])
                elif vertex_count is None:
                    raise TemplateError(f"{path}: PLY elements before 'vertex' are not supported")
                elif element == "face":
                    face_count = int(words[2])
            elif words[0] == "property" and in_vertex:
                if words[1] == "list":
                    raise TemplateError(f"{path}: list properties on vertices are not supported")
                props.append((words[2], _PLY_TYPES.get(words[1])))
            elif words[0] == "property" and element == "face" and words[1] == "list" and face_types is None:
                face_types = (_PLY_TYPES.get(words[2]), _PLY_TYPES.get(words[3]))
            elif words[0] == "end_header":
                break
        if vertex_count is None or not {"x", "y", "z"} <= {p for p, _ in props}:
            raise TemplateError(f"{path}: PLY has no vertex x/y/z")
        if fmt == "ascii":
            rows = [fh.readline().split() for _ in range(vertex_count)]
            try:
                table = np.array(rows, dtype=np.float64)
            except ValueError:
                raise TemplateError(f"{path}: malformed ASCII PLY vertex data") from None
            cols = [p for p, _ in props]
            faces = None
            if face_count:
                try:
                    rows = [fh.readline().split() for _ in range(face_count)]
                    if all(len(r) == 4 and r[0] == b"3" for r in rows):
                        faces = np.array([r[1:] for r in rows], dtype=np.int64)
                except ValueError:
                    faces = None
            return table[:, [cols.index(a) for a in "xyz"]].astype(np.float32), faces
        if fmt not in ("binary_little_endian", "binary_big_endian"):
            raise TemplateError(f"{path}: unknown PLY format {fmt!r}")
        if any(t is None for _, t in props):
            raise TemplateError(f"{path}: unknown PLY property type")
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(name, order + t) for name, t in props])
        raw = fh.read(dtype.itemsize * vertex_count)
        if len(raw) < dtype.itemsize * vertex_count:
            raise TemplateError(f"{path}: PLY file is truncated")
        table = np.frombuffer(raw, dtype=dtype, count=vertex_count)
        verts = np.stack([table[a] for a in "xyz"], axis=1).astype(np.float32)
        faces = None
        if face_count and face_types and None not in face_types:
            # fast path: every face a triangle (FLAME and BIWI are)
            fdt = np.dtype([("n", order + face_types[0]), ("i", order + face_types[1], 3)])
            raw = fh.read(fdt.itemsize * face_count)
            if len(raw) == fdt.itemsize * face_count:
                tris = np.frombuffer(raw, dtype=fdt, count=face_count)
                if (tris["n"] == 3).all():
                    faces = tris["i"].astype(np.int64)
        return verts, faces


def _read_obj(path: str) -> tuple[np.ndarray, list[list[int]] | None]:
    verts, faces = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("f "):
                try:
                    faces.append([int(tok.split("/")[0]) - 1 for tok in line.split()[1:]])
                except ValueError:
                    raise TemplateError(f"{path}: malformed face line {line.strip()!r}") from None
            elif line.startswith("v "):
                parts = line.split()
                try:
                    verts.append([float(parts[1]), float(parts[2]), float(parts[3])])
                except (IndexError, ValueError):
                    raise TemplateError(f"{path}: malformed vertex line {line.strip()!r}") from None
    if not verts:
        raise TemplateError(f"{path}: OBJ file has no vertices")
    return np.asarray(verts, dtype=np.float32), (faces or None)


def load_template(path: str | os.PathLike) -> np.ndarray:
    """Vertex positions of a template mesh file, (V, 3) float32."""
    return load_mesh(path)[0]


def load_mesh(path: str | os.PathLike) -> tuple[np.ndarray, object]:
    """Vertex positions (V, 3) float32 and faces (or None) of a mesh file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TemplateError(f"template file not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    faces = None
    try:
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif ext == ".ply":
            arr, faces = _read_ply(path)
        elif ext == ".obj":
            arr, faces = _read_obj(path)
        else:
            raise TemplateError(f"unsupported template format {ext or '(none)'}: use .npy, .ply or .obj")
    except (OSError, ValueError, IndexError) as exc:
        raise TemplateError(f"cannot read template {path}: {exc or 'truncated file'}") from None
    verts = as_vertices(arr, source=path)
    if faces is not None and len(faces):
        flat = np.concatenate([np.asarray(f, dtype=np.int64).ravel() for f in faces]) if isinstance(faces, list) \
            else np.asarray(faces).ravel()
        if flat.min() < 0 or flat.max() >= len(verts):
            faces = None  # indices out of range (or relative OBJ indices): positions only
    return verts, faces


def as_vertices(arr, source: str = "template") -> np.ndarray:
    """A (V*3,) or (V, 3) array as (V, 3) float32."""
    arr = np.asarray(arr)
    if arr.ndim == 1 and arr.size % 3 == 0:
        arr = arr.reshape(-1, 3)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise TemplateError(f"{source}: expected V*3 or (V, 3) vertex positions, got shape {arr.shape}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise TemplateError(f"{source}: vertex positions contain NaN or infinity")
    return arr


def describe_topology(num_vertices: int) -> str:
    return KNOWN_TOPOLOGIES.get(num_vertices, f"unknown topology ({num_vertices} vertices)")


def check_vertex_count(vertices: np.ndarray, expected: int, source: str = "template") -> None:
    if vertices.shape[0] != expected:
        known = ", ".join(f"{n} for {name}" for n, name in KNOWN_TOPOLOGIES.items())
        raise TemplateError(
            f"{source} has {vertices.shape[0]} vertices but the model expects {expected} "
            f"({describe_topology(expected)}); known topologies: {known}"
        )
