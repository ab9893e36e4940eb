"""Motion post-processing for baking: time resampling and compact shape-key bases.

Everything here is numpy on (frames, V, 3) vertex arrays; the Blender layer
only writes the results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CodeTalkerError


def resample(motion: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linearly resample motion (T, ...) from ``src_fps`` to ``dst_fps``.

    Output frame k is the motion at time k / dst_fps; the output covers the
    same span as the input (up to its last sample).
    """
    if src_fps <= 0 or dst_fps <= 0:
        raise CodeTalkerError(f"frame rates must be positive (got {src_fps} and {dst_fps})")
    t = motion.shape[0]
    if t == 0:
        return motion.copy()
    if abs(src_fps - dst_fps) < 1e-9:
        return motion.copy()
    n = int(np.floor((t - 1) * dst_fps / src_fps + 1e-9)) + 1
    pos = np.arange(n, dtype=np.float64) * (src_fps / dst_fps)
    lo = np.minimum(np.floor(pos).astype(np.int64), t - 1)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo).astype(motion.dtype).reshape((-1,) + (1,) * (motion.ndim - 1))
    out = np.empty((n,) + motion.shape[1:], dtype=motion.dtype)
    for a in range(0, n, 256):  # in chunks: long clips are large (10 min of FLAME: 0.9 GB)
        b = min(n, a + 256)
        lo_rows, hi_rows = motion[lo[a:b]], motion[hi[a:b]]
        out[a:b] = lo_rows + (hi_rows - lo_rows) * w[a:b]
    return out


@dataclass
class CompactBasis:
    """motion ~= template + sum_k coefficients[:, k] * displacements[k]."""

    displacements: np.ndarray  # (K, V, 3) float32; scaled so |coefficients| <= 1
    coefficients: np.ndarray  # (T, K) float32
    max_error: float  # largest vertex error over all frames, mesh units

    @property
    def size(self) -> int:
        return self.displacements.shape[0]

    def reconstruct(self, template: np.ndarray) -> np.ndarray:
        k, v, _ = self.displacements.shape
        flat = self.coefficients @ self.displacements.reshape(k, v * 3)
        return template[None] + flat.reshape(-1, v, 3)


def _vertex_error(residual: np.ndarray) -> np.ndarray:
    """Per-frame largest vertex error of residual (T, V*3) -> (T,)."""
    r = residual.reshape(residual.shape[0], -1, 3)
    return np.sqrt((r[..., 0] ** 2 + r[..., 1] ** 2 + r[..., 2] ** 2).max(-1))


def _principal_directions(rows: np.ndarray) -> np.ndarray:
    """Right singular vectors of rows (n, d), strongest first: (r, d), orthonormal.

    Through the n x n Gram matrix, which is much cheaper than a full SVD when
    n (frames) is far smaller than d (3 x vertices).
    """
    gram = rows @ rows.T
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    keep = evals > evals[0] * 1e-12 if evals.size and evals[0] > 0 else np.zeros(evals.shape, bool)
    sv = np.sqrt(evals[keep])
    return (evecs[:, keep].T @ rows) / sv[:, None]


def compact_basis(
    motion: np.ndarray,
    template: np.ndarray,
    max_error: float,
    max_keys: int = 256,
    sample_frames: int = 2000,
) -> CompactBasis:
    """The smallest SVD basis whose reconstruction keeps every vertex within ``max_error``.

    motion (T, V, 3), template (V, 3). The basis comes from the SVD of the
    displacements (of at most ``sample_frames`` evenly spaced frames, for long
    clips); coefficients are projections of every frame, and the error bound
    is checked on every frame. Raises if ``max_keys`` components do not reach it.
    """
    t, v, _ = motion.shape
    if t == 0:
        raise CodeTalkerError("no frames to bake")
    disp = (motion - template[None]).reshape(t, v * 3).astype(np.float32)
    still = float(_vertex_error(disp).max())
    if still <= max_error:
        return CompactBasis(np.zeros((0, v, 3), np.float32), np.zeros((t, 0), np.float32), still)
    rows = disp if t <= sample_frames else disp[np.linspace(0, t - 1, sample_frames).round().astype(int)]
    vt = _principal_directions(rows.astype(np.float64))[:max_keys].astype(np.float32)
    limit = vt.shape[0]
    coef_all = np.zeros((t, limit), dtype=np.float32)  # projections, filled as the search needs them
    done = 0

    def error(k: int, stop_above: float = float("inf"), chunk: int = 512) -> float:
        """Largest vertex error with k components; stops early once above ``stop_above``."""
        nonlocal done
        if k > done:
            coef_all[:, done:k] = disp @ vt[done:k].T
            done = k
        worst = 0.0
        for a in range(0, t, chunk):
            worst = max(worst, float(_vertex_error(disp[a : a + chunk] - coef_all[a : a + chunk, :k] @ vt[:k]).max()))
            if worst > stop_above:
                break
        return worst

    # Exponential then binary search for the smallest K meeting the bound;
    # each check costs O(T * V * K), so small answers stay cheap.
    hi = 1
    while hi < limit and error(hi, max_error) > max_error:
        hi = min(limit, hi * 2)
    if error(hi, max_error) > max_error:
        raise CodeTalkerError(
            f"{limit} shape keys cannot hold this motion within {max_error:g}; "
            "raise the error bound or use per-frame mode"
        )
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:
        mid = (lo + hi) // 2
        if error(mid, max_error) <= max_error:
            hi = mid
        else:
            lo = mid + 1
    k = hi
    coef, basis = coef_all[:, :k], vt[:k]
    scale = np.abs(coef).max(axis=0)
    scale[scale == 0] = 1.0
    return CompactBasis(
        (basis * scale[:, None]).reshape(k, v, 3).astype(np.float32),
        (coef / scale).astype(np.float32),
        error(k),
    )


def default_error_bound(template: np.ndarray) -> float:
    """0.1 mm on a FLAME head (in metres), the same fraction of the head size elsewhere.

    The FLAME sample's bounding-box diagonal is about 0.33 m, so the bound is
    3e-4 of the diagonal.
    """
    diag = float(np.linalg.norm(template.max(0) - template.min(0)))
    return 3e-4 * diag
