"""Speaking styles: weight vectors over the model's training subjects.

The paper's style embedding is B^T s / |s|_1 for a weight vector s over the
training subjects; a one-hot s picks one subject's style and two-style
interpolation w*emb(a) + (1-w)*emb(b) is s = w*e_a + (1-w)*e_b.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import StyleError

# How a blend of styles becomes motion. 'model': one run with the blended style
# embedding, the model's own interpolation (the reference conditions on one
# speaker). Its codes, and so its performance, can switch between nearby
# weights. 'motion': one run per style with a weight, the motions mixed by
# weight: linear, so smooth and monotonic in the weights, at one run per style.
BLENDS = ("model", "motion")


def add_blend_argument(parser) -> None:
    """``--blend model|motion`` on an argparse parser (``args.blend``, one of ``BLENDS``)."""
    parser.add_argument("--blend", choices=BLENDS, default="model",
                        help="how blended styles become motion. model (default): one run with the blended style, "
                             "the model's own interpolation; motion: one run per style, the motions mixed by "
                             "weight (smooth and monotonic in the weights, one run per style)")

StyleSpec = None | str | int | Mapping[str | int, float] | Sequence[float] | np.ndarray


def subject_index(subjects: Sequence[str], key: str | int) -> int:
    """Index of a subject given by name or index (a numeric string counts as an index)."""
    if isinstance(key, str) and key in subjects:
        return list(subjects).index(key)
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        key = int(key)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if 0 <= key < len(subjects):
            return int(key)
        raise StyleError(f"style index {key} is out of range: the model has {len(subjects)} subjects (0-{len(subjects) - 1})")
    raise StyleError(f"unknown style {key!r}; the model's subjects are: {' '.join(subjects)}")


def style_weights(spec: StyleSpec, subjects: Sequence[str]) -> np.ndarray:
    """A style spec as an L1-normalised weight vector over ``subjects`` (float64).

    spec: None (all subjects equally), a subject name or index, a mapping
    {name or index: weight}, or a full weight vector.
    """
    n = len(subjects)
    w = np.zeros(n, dtype=np.float64)
    if spec is None:
        w[:] = 1.0
    elif isinstance(spec, (str, int, np.integer)):
        w[subject_index(subjects, spec)] = 1.0
    elif isinstance(spec, Mapping):
        if not spec:
            raise StyleError("the style mapping is empty")
        for key, value in spec.items():
            w[subject_index(subjects, key)] += float(value)
    else:
        arr = np.asarray(spec, dtype=np.float64)
        if arr.shape != (n,):
            raise StyleError(f"a style weight vector needs {n} entries (one per subject), got shape {arr.shape}")
        w = arr.copy()
    if not np.isfinite(w).all():
        raise StyleError("style weights must be finite")
    if (w < 0).any():
        raise StyleError("style weights must not be negative")
    total = w.sum()
    if total <= 0:
        raise StyleError("style weights must not all be zero")
    return w / total


def two_style(a: str | int, b: str | int, weight_of_a: float, subjects: Sequence[str]) -> np.ndarray:
    """w * style(a) + (1 - w) * style(b), as in the reference's interpolation."""
    if not 0.0 <= weight_of_a <= 1.0:
        raise StyleError(f"the blend weight must lie in [0, 1], got {weight_of_a}")
    w = np.zeros(len(subjects), dtype=np.float64)
    w[subject_index(subjects, a)] += weight_of_a
    w[subject_index(subjects, b)] += 1.0 - weight_of_a
    return w


def parse_style_args(items: Sequence[str], subjects: Sequence[str]) -> np.ndarray | None:
    """CLI ``--style`` values: ``NAME``, ``INDEX`` or ``NAME=WEIGHT`` (repeatable)."""
    if not items:
        return None
    spec: dict[str | int, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if sep:
            try:
                weight = float(value)
            except ValueError:
                raise StyleError(f"bad style weight in {item!r}: expected NAME=NUMBER") from None
        else:
            weight = 1.0
        key = list(subjects)[subject_index(subjects, name)]
        spec[key] = spec.get(key, 0.0) + weight
    return style_weights(spec, subjects)
