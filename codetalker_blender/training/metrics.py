"""Evaluation metrics: the paper's LVE and FDD, mouth opening, forced alignment.

Shapes: T frames, V vertices; motion arrays are vertex positions (T, V, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def lve(pred: np.ndarray, gt: np.ndarray, lips: np.ndarray) -> float:
    """Lip vertex error: per frame the largest squared L2 error over the lip vertices, averaged over frames."""
    err = ((pred[:, lips] - gt[:, lips]) ** 2).sum(-1)  # (T, L)
    return float(err.max(1).mean())


def upper_face_dynamics(motion: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """Mean over upper-face vertices of the std over time of the squared displacement norm."""
    d = ((motion[:, upper] - template[None, upper]) ** 2).sum(-1)  # (T, U)
    return float(d.std(0).mean())


def fdd(pred: np.ndarray, gt: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """Upper-face dynamics deviation of one sequence: ground truth minus prediction."""
    return upper_face_dynamics(gt, template, upper) - upper_face_dynamics(pred, template, upper)


def mouth_opening(motion: np.ndarray, template: np.ndarray, upper: int, lower: int) -> np.ndarray:
    """Distance between a midline upper and lower lip vertex, minus its value at rest: (T,)."""
    rest = np.linalg.norm(template[upper] - template[lower])
    return np.linalg.norm(motion[:, upper] - motion[:, lower], axis=1) - rest


def opening_at(opening: np.ndarray, seconds, fps: float) -> np.ndarray:
    """A per-frame track (T,) read at times in seconds, linearly between frames."""
    return np.interp(np.asarray(seconds, dtype=np.float64) * fps, np.arange(len(opening)), opening)


@dataclass(frozen=True)
class Phone:
    name: str  # CMU/ARPAbet phone as pocketsphinx names it (SIL for silence)
    start: float
    end: float

    @property
    def middle(self) -> float:
        return 0.5 * (self.start + self.end)


def force_align(samples: np.ndarray, text: str, sample_rate: int = 16000) -> list[Phone]:
    """Phone boundaries of ``text`` in 16 kHz speech, by pocketsphinx forced alignment."""
    from pocketsphinx import Decoder

    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()
    dec = Decoder(samprate=sample_rate, loglevel="FATAL")
    dec.set_align_text(text.lower())
    dec.start_utt()  # first pass: the words
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    dec.set_alignment()
    dec.start_utt()  # second pass: their phones
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    rate = float(dec.config["frate"])
    out = []
    for word in dec.get_alignment():
        for p in word:
            out.append(Phone(p.name, p.start / rate, (p.start + p.duration) / rate))
    return out


def read_hts_labels(path: str) -> list[Phone]:
    """HTS full-context labels (start end label, 100 ns units) -> phones (the label's centre phone)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 3:
                continue
            centre = parts[2].split("-", 1)[1].split("+", 1)[0]
            out.append(Phone(centre.upper().replace("PAU", "SIL"), int(parts[0]) * 1e-7, int(parts[1]) * 1e-7))
    return out


def envelope(samples: np.ndarray, fps: float, frames: int, sample_rate: int = 16000) -> np.ndarray:
    """RMS energy of the speech per motion frame (T,), in dB."""
    hop = sample_rate / fps
    out = np.zeros(frames)
    for f in range(frames):
        a, b = int(f * hop), int((f + 1) * hop)
        seg = samples[a:b]
        out[f] = 10 * np.log10(np.mean(seg**2) + 1e-10) if seg.size else -100.0
    return out
