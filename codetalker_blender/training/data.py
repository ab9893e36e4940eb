"""Training data in the published VOCASET / BIWI layout (ours and the real datasets alike).

What the published training code expects, as facts:

* ``<root>/wav/<subject>_<sentence>.wav``: speech, read at 16 kHz;
* ``<root>/vertices_npy/<same name>.npy``: (frames, V*3) vertex positions.
  VOCASET stores 60 fps and training uses every second frame (30 fps): set
  ``vertices_stride: 2``. BIWI stores 25 fps (stride 1). Our synthetic corpus
  stores the target fps directly;
* ``<root>/templates.pkl``: a pickled dict subject -> (V, 3) neutral face;
* the subject is the file name minus its trailing ``_<sentence>`` part, and
  the sentence number is the trailing digits. Splits are subject lists plus
  sentence ranges, [lo, hi] or a list of them (the published ones: VOCASET train 1-40, val/test 21-40 on
  other subjects; BIWI train 1-32, val 33-36, test 37-40).

The pickle is the datasets' own format; only open templates files you trust.

Our synthetic corpus also holds the rig that made its motion (``rig.npz``)
and each clip's rig coefficients under every synthetic speaker
(``rig_coeffs/``). Its clips then carry a :class:`RigMotion`, which gives
the motion of any blend of the speakers' articulation (style mixing in
training) and reads no vertex files.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DataConfig:
    root: str
    subjects: tuple[str, ...]  # training subjects = style slots, in order
    splits: dict = field(default_factory=lambda: {"train": [1, 999], "val": [1, 999], "test": [1, 999]})
    split_subjects: dict = field(default_factory=dict)  # split -> subjects (default: ``subjects``)
    vertices_stride: int = 1
    wav_dir: str = "wav"
    vertices_dir: str = "vertices_npy"
    templates: str = "templates.pkl"
    features_dir: str = ""  # cached 50 Hz speech features; default <root>/features


class RigMotion:
    """A synthetic corpus's motion from its rig: ``rig.npz`` plus ``rig_coeffs/<clip>.npy``.

    The rig is linear in its coefficients, so a blend of speakers' motion is
    the rig applied to the same blend of their coefficients.
    """

    def __init__(self, root: str):
        with np.load(os.path.join(root, "rig.npz")) as z:
            fields = z["fields"]
            self.speakers = tuple(str(s) for s in z["speakers"])
        self.fields = fields.reshape(len(fields), -1).astype(np.float32)  # (P, V*3)
        self.folder = os.path.join(root, "rig_coeffs")

    @classmethod
    def find(cls, root: str) -> RigMotion | None:
        return cls(root) if os.path.isfile(os.path.join(root, "rig.npz")) else None

    def has(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.folder, name + ".npy"))

    def motion(self, name: str, style: dict[str, float], stride: int = 1) -> np.ndarray:
        """Displacements (frames, V*3) of clip ``name`` articulated as the blend ``style``
        (speaker -> weight, summing to 1), every ``stride``-th frame."""
        coeffs = np.load(os.path.join(self.folder, name + ".npy"))[:, ::stride].astype(np.float32)  # (S, T, P)
        unknown = set(style) - set(self.speakers)
        if unknown:
            raise KeyError(f"no rig coefficients for {sorted(unknown)} (corpus speakers: {list(self.speakers)})")
        w = np.array([style.get(s, 0.0) for s in self.speakers], dtype=np.float32)
        if abs(float(w.sum()) - 1.0) > 1e-4:
            raise ValueError(f"style weights must sum to 1, got {float(w.sum()):.6g} ({style})")
        return np.tensordot(w, coeffs, axes=1) @ self.fields


@dataclass
class Clip:
    name: str
    subject: str
    sentence: int
    wav: str
    vertices: str
    template: np.ndarray  # (V*3,)
    stride: int
    rig: RigMotion | None = None  # synthetic corpora: motion of any blend of the speakers

    def motion(self, style: dict[str, float] | None = None) -> np.ndarray:
        """Displacements from the template (frames, V*3), float32.

        ``style`` (speaker -> weight, summing to 1) asks for that blend of the
        speakers' articulation, which only a clip with a rig has; by default the
        clip's own speaker's motion.
        """
        if self.rig is not None:
            return self.rig.motion(self.name, style or {self.subject: 1.0}, self.stride)
        if style is not None and style != {self.subject: 1.0}:
            raise ValueError(f"{self.name}: blending speakers needs a synthetic corpus with rig coefficients "
                             "(tools/make_corpus.py writes them)")
        v = np.load(self.vertices, mmap_mode="r")[:: self.stride]
        return np.asarray(v, dtype=np.float32).reshape(len(v), -1) - self.template[None]


_NAME = re.compile(r"^(?P<subject>.+)_(?:sentence)?(?P<num>\d+)$")


def parse_name(name: str) -> tuple[str, int] | None:
    m = _NAME.match(name)
    return (m.group("subject"), int(m.group("num"))) if m else None


def load_templates(path: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as fh:
        data = pickle.load(fh)  # noqa: S301 - the datasets' own format
    return {str(k): np.asarray(v, dtype=np.float32).reshape(-1) for k, v in data.items()}


def clips(cfg: DataConfig, split: str) -> list[Clip]:
    """The clips of one split, sorted by name."""
    templates = load_templates(os.path.join(cfg.root, cfg.templates))
    subjects = set(cfg.split_subjects.get(split, cfg.subjects))
    ranges = split_ranges(cfg.splits[split])
    vdir = os.path.join(cfg.root, cfg.vertices_dir)
    rig = RigMotion.find(cfg.root)
    out = []
    for fname in sorted(os.listdir(vdir)):
        if not fname.endswith(".npy"):
            continue
        name = fname[:-4]
        parsed = parse_name(name)
        if parsed is None or parsed[0] not in subjects or not any(lo <= parsed[1] <= hi for lo, hi in ranges):
            continue
        wav = os.path.join(cfg.root, cfg.wav_dir, name + ".wav")
        if not os.path.isfile(wav):
            continue
        out.append(Clip(name, parsed[0], parsed[1], wav, os.path.join(vdir, fname), templates[parsed[0]],
                        cfg.vertices_stride, rig if rig is not None and rig.has(name) else None))
    return out


def split_ranges(spec) -> list[tuple[int, int]]:
    """A split's sentence numbers: [lo, hi] or a list of such ranges, inclusive."""
    if len(spec) == 2 and all(isinstance(x, int) for x in spec):
        return [(int(spec[0]), int(spec[1]))]
    return [(int(lo), int(hi)) for lo, hi in spec]


def features_dir(cfg: DataConfig) -> str:
    return cfg.features_dir or os.path.join(cfg.root, "features")
