"""A procedural face rig built from template geometry alone.

No FLAME blendshapes or skinning are available, so the articulators are
deformation fields derived from the mesh: smooth per-vertex weights solved as
harmonic functions on the mesh graph (a Laplace solve with the handle
vertices fixed to 1 and far-away vertices fixed to 0), times simple
per-articulator displacements:

* ``jaw``: rotation of the lower face about a horizontal axis behind the
  mouth; linear in the two fields ``(cos a - 1) * A + sin a * B``.
* ``upper_lip``: the upper lip lifts (open vowels).
* ``round``: lips narrow towards the midline and protrude.
* ``spread``: mouth corners move outwards and back.
* ``press``: the lips press together (bilabial closure).
* ``labio``: the lower lip tucks up and back under the upper teeth (/f v/).
* ``brow``: the forehead lifts a little (upper-face motion).

Axes follow both datasets: +y up, +z out of the face, x across. Lengths are
given for the FLAME head (metres) and scaled by the ratio of a landmark
distance (mouth to nose tip) for other topologies.

Shapes: V vertices, P rig fields; ``fields`` is (P, V, 3).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

FIELDS = ("jaw_cos", "jaw_sin", "upper_lip", "round", "spread", "press", "labio", "brow")

# FLAME landmarks (FLAME_sample.ply): midline vertices of the upper and lower lip
# where the lips meet; their mouth-to-nose-tip distance is the unit of scale.
FLAME_UPPER_LIP, FLAME_LOWER_LIP = 3546, 3504
FLAME_NOSE_TO_MOUTH = 0.0376  # metres, measured on FLAME_sample.ply (rounded)


@dataclass
class Rig:
    template: np.ndarray  # (V, 3)
    fields: np.ndarray  # (P, V, 3) displacement per unit of each field
    mouth: np.ndarray  # (3,) point on the midline where the lips meet
    scale: float  # size of this head relative to FLAME
    upper_lip: int  # a midline upper-lip vertex, for measuring the mouth opening
    lower_lip: int
    lip_vertices: np.ndarray  # indices used for LVE
    upper_face_vertices: np.ndarray  # indices used for FDD

    def displacements(self, coeffs: np.ndarray) -> np.ndarray:
        """Field coefficients (T, P) -> per-frame displacement (T, V*3), float32."""
        flat = self.fields.reshape(len(FIELDS), -1)
        return (coeffs.astype(np.float32) @ flat).astype(np.float32)


def edges_from_faces(faces: np.ndarray) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.sort(e, axis=1)
    return np.unique(e, axis=0)


def harmonic(n: int, edges: np.ndarray, fixed: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Weights (n,) equal to ``fixed = (indices, values)`` there and harmonic elsewhere.

    Uniform graph Laplacian; vertices in components with no fixed vertex get 0.
    """
    idx, val = fixed
    w = np.zeros(n)
    is_fixed = np.zeros(n, bool)
    is_fixed[idx] = True
    w[idx] = val
    i, j = edges[:, 0], edges[:, 1]
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    adj = (adj + adj.T).tocsr()
    lap = sp.diags(np.asarray(adj.sum(1)).ravel()) - adj
    free = np.flatnonzero(~is_fixed)
    if free.size:
        lff = lap[free][:, free].tocsc()
        rhs = -lap[free][:, idx] @ w[idx]
        # A tiny diagonal term keeps components without fixed vertices solvable (they go to 0).
        w[free] = spsolve(lff + sp.identity(free.size) * 1e-9, rhs)
    return np.clip(w, 0.0, 1.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, oriented away from the mesh centroid on average."""
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    if np.mean(np.sum(vn * (verts - verts.mean(0)), axis=1)) < 0:
        vn = -vn
    return vn


def find_mouth(verts: np.ndarray) -> tuple[np.ndarray, int, int, np.ndarray]:
    """Mouth point, upper and lower midline lip vertices, and the nose tip, from geometry.

    The nose tip is the most forward vertex. Below it the front profile of the
    midline dips three times: under the nose, at the mouth line, and between
    lower lip and chin. The mouth line is the second dip; the lips are the
    bulges on either side of it.
    """
    nose = verts[np.argmax(verts[:, 2])]
    width = np.ptp(verts[:, 0])
    band = np.flatnonzero((np.abs(verts[:, 0] - nose[0]) < 0.012 * width) & (verts[:, 1] < nose[1]))
    ys = verts[band, 1]
    which = np.digitize(ys, np.linspace(ys.min(), ys.max(), 70))
    prof = []
    for b in np.unique(which):
        members = band[which == b]
        prof.append(members[np.argmax(verts[members, 2])])
    prof = np.asarray(prof)[np.argsort(verts[prof, 1])[::-1]]  # from the nose downwards
    z = np.convolve(np.pad(verts[prof, 2], 1, mode="edge"), np.ones(3) / 3, mode="valid")
    minima = [k for k in range(1, len(z) - 1) if z[k] < z[k - 1] and z[k] <= z[k + 1]]
    if len(minima) < 2:
        raise ValueError("cannot find the mouth line on this template")
    sub, mouth_k = minima[0], minima[1]
    raw = verts[prof, 2]
    lo_k, hi_k = max(sub + 1, mouth_k - 2), min(len(z), mouth_k + 3)
    mouth_k = lo_k + int(np.argmin(raw[lo_k:hi_k]))  # the crease itself, unsmoothed
    upper_k = sub + int(np.argmax(z[sub:mouth_k]))
    nxt = minima[2] if len(minima) > 2 else len(z)
    lower_k = mouth_k + int(np.argmax(z[mouth_k:nxt]))
    return verts[prof[mouth_k]].copy(), int(prof[upper_k]), int(prof[lower_k]), nose


def build_rig(
    verts: np.ndarray,
    faces: np.ndarray,
    *,
    lips: np.ndarray | None = None,
    upper_face: np.ndarray | None = None,
    lip_pair: tuple[int, int] | None = None,
    lve: np.ndarray | None = None,
    fdd: np.ndarray | None = None,
) -> Rig:
    """Build the rig for a template (V, 3) with triangle faces (F, 3).

    ``lips``: a lip vertex set if known (FLAME's ``lips`` region); ``upper_face``:
    forehead/brow vertices (FLAME's ``forehead``, BIWI's upper-face list);
    ``lip_pair``: the midline upper/lower lip vertices if known; ``lve``: the
    vertex set the lip error is measured on (defaults to ``lips``); ``fdd``:
    the upper-face set for FDD (defaults to ``upper_face``).
    """
    verts = np.asarray(verts, np.float64)
    n = len(verts)
    edges = edges_from_faces(np.asarray(faces))
    nose = verts[np.argmax(verts[:, 2])]
    if lip_pair is not None:
        upper_v, lower_v = lip_pair
        mouth = 0.5 * (verts[upper_v] + verts[lower_v])
    else:
        mouth, upper_v, lower_v, nose = find_mouth(verts)
    scale = float(np.linalg.norm(nose[1:] - mouth[1:]) / FLAME_NOSE_TO_MOUTH)
    mm = 1e-3 * scale  # one FLAME millimetre on this head

    rel = verts - mouth
    dist = np.linalg.norm(rel, axis=1)

    # Lip weight: 1 on the lips, falling off to 0 about 4 cm from the mouth.
    if lips is None:
        lips = np.flatnonzero((dist < 26 * mm) & (rel[:, 2] > -14 * mm) & (np.abs(rel[:, 1]) < 14 * mm))
    far = np.flatnonzero(dist > 42 * mm)
    w_lip = harmonic(n, edges, (np.concatenate([lips, far]), np.r_[np.ones(len(lips)), np.zeros(len(far))]))

    # Which side of the mouth line a vertex belongs to. Outer (forward-facing)
    # surfaces are told by height; the inner lip surfaces, which meet inside
    # the closed mouth, by connectivity (a harmonic field between the two).
    normals = vertex_normals(verts, np.asarray(faces))
    near = (dist < 30 * mm) | np.isin(np.arange(n), lips)
    outer = ~near | (normals[:, 2] > 0.4)
    above = np.flatnonzero(outer & (rel[:, 1] > 2.0 * mm))
    below = np.flatnonzero(outer & (rel[:, 1] < -2.5 * mm))
    side = harmonic(n, edges, (np.concatenate([above, below]), np.r_[np.ones(len(above)), np.zeros(len(below))]))
    w_upper, w_lower = w_lip * side, w_lip * (1 - side)

    # Jaw weight: 1 on the lower face in front, 0 above the mouth line and far away.
    one = below[(dist[below] < 55 * mm) & (rel[below, 2] > -30 * mm)]
    zero = np.union1d(above, np.flatnonzero(dist > 105 * mm))
    zero = np.setdiff1d(zero, one)
    w_jaw = harmonic(n, edges, (np.concatenate([one, zero]), np.r_[np.ones(len(one)), np.zeros(len(zero))]))
    pivot = mouth + np.array([0.0, 25 * mm, -85 * mm])
    arm = verts - pivot
    jaw_a = np.stack([np.zeros(n), arm[:, 1], arm[:, 2]], 1) * w_jaw[:, None]  # times (cos a - 1)
    jaw_b = np.stack([np.zeros(n), -arm[:, 2], arm[:, 1]], 1) * w_jaw[:, None]  # times sin a

    # Brow weight: 1 on the forehead/brow set, falling off over the upper face.
    if upper_face is None:
        upper_face = np.flatnonzero(rel[:, 1] > 70 * mm)
    brow_core = upper_face[rel[upper_face, 1] > np.percentile(rel[upper_face, 1], 55)]
    brow_zero = np.flatnonzero(rel[:, 1] < 40 * mm)
    w_brow = harmonic(
        n, edges, (np.concatenate([brow_core, brow_zero]), np.r_[np.ones(len(brow_core)), np.zeros(len(brow_zero))])
    )
    w_brow *= _smoothstep((rel[:, 2] + 60 * mm) / (40 * mm))  # the back of the head stays

    x = rel[:, 0:1]
    fields = np.zeros((len(FIELDS), n, 3))
    fields[0], fields[1] = jaw_a, jaw_b
    fields[2] = np.array([0, 1.0, 0.3]) * mm * w_upper[:, None]
    fields[3] = np.concatenate([-0.30 * x, np.zeros((n, 1)), np.full((n, 1), 4.0 * mm)], 1) * w_lip[:, None]
    fields[4] = np.concatenate([0.12 * x, np.full((n, 1), 0.3 * mm), np.full((n, 1), -1.5 * mm)], 1) * w_lip[:, None]
    fields[5] = (np.array([0, -1.0, 0.2]) * w_upper[:, None] + np.array([0, 1.0, 0.2]) * w_lower[:, None]) * mm
    fields[6] = (np.array([0, 2.5, -2.5]) * w_lower[:, None] + np.array([0, 0.6, 0.0]) * w_upper[:, None]) * mm
    fields[7] = np.array([0, 1.0, 0.15]) * mm * w_brow[:, None]
    return Rig(
        template=verts.astype(np.float32),
        fields=fields.astype(np.float32),
        mouth=mouth,
        scale=scale,
        upper_lip=int(upper_v),
        lower_lip=int(lower_v),
        lip_vertices=np.asarray(lve if lve is not None else lips),
        upper_face_vertices=np.asarray(fdd if fdd is not None else upper_face),
    )


def _read_index_list(path: str) -> np.ndarray:
    with open(path, encoding="utf-8") as fh:
        return np.array([int(t) for t in fh.read().replace(",", " ").split()], dtype=np.int64)


def rig_for_topology(name: str, shared: str) -> Rig:
    """The rig for ``flame`` or ``biwi`` from the template and vertex sets under ``shared/assets``."""
    from ..core.mesh import load_mesh

    name = name.lower()
    if name == "flame":
        verts, faces = load_mesh(os.path.join(shared, "assets", "flame", "FLAME_sample.ply"))
        with open(os.path.join(shared, "assets", "flame", "FLAME_regions.json"), encoding="utf-8") as fh:
            regions = {k: np.asarray(v) for k, v in json.load(fh).items()}
        return build_rig(
            verts,
            np.asarray(faces),
            lips=regions["lips"],
            upper_face=regions["forehead"],
            lip_pair=(FLAME_UPPER_LIP, FLAME_LOWER_LIP),
            fdd=np.union1d(regions["forehead"], regions["eye_region"]),
        )
    if name == "biwi":
        verts, faces = load_mesh(os.path.join(shared, "assets", "biwi", "BIWI.ply"))
        lve = _read_index_list(os.path.join(shared, "assets", "biwi", "lve_vertices.txt"))
        fdd = _read_index_list(os.path.join(shared, "assets", "biwi", "fdd_vertices.txt"))
        return build_rig(verts, np.asarray(faces), upper_face=fdd, lve=lve, fdd=fdd)
    raise ValueError(f"unknown topology {name!r}; expected flame or biwi")
