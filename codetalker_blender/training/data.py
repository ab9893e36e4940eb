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


@dataclass
class Clip:
    name: str
    subject: str
    sentence: int
    wav: str
    vertices: str
    template: np.ndarray  # (V*3,)
    stride: int

    def motion(self) -> np.ndarray:
        """Displacements from the template (frames, V*3), float32."""
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
                        cfg.vertices_stride))
    return out


def split_ranges(spec) -> list[tuple[int, int]]:
    """A split's sentence numbers: [lo, hi] or a list of such ranges, inclusive."""
    if len(spec) == 2 and all(isinstance(x, int) for x in spec):
        return [(int(spec[0]), int(spec[1]))]
    return [(int(lo), int(hi)) for lo, hi in spec]


def features_dir(cfg: DataConfig) -> str:
    return cfg.features_dir or os.path.join(cfg.root, "features")
