"""Procedural articulation: timed phonemes -> rig field coefficients per frame.

Each phoneme sets targets for five articulatory parameters (jaw opening, lip
rounding, lip spreading, bilabial closure, labiodental contact). Targets are
blended over time with dominance functions (Cohen & Massaro's coarticulation
model): a segment's influence decays exponentially outside its core, and
strongly dominant segments (/p b m/ on closure, /f v/ on the lower lip) win
over their neighbours, so lips close on bilabials even between open vowels.
Silence targets the closed, resting mouth. A speaker style scales and times
all of this; the upper face gets a small brow motion.

Shapes: S segments, T frames, P rig fields (rig.FIELDS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rig import FIELDS

PARAMS = ("jaw", "round", "spread", "close", "labio")

# IPA symbol -> (jaw, round, spread, close, labio), dominance. Piper / espeak-ng symbols.
_V = 1.0  # vowel dominance
PHONEMES: dict[str, tuple[tuple[float, float, float, float, float], float]] = {
    # open and mid vowels
    "a": ((0.95, 0.0, 0.15, 0, 0), _V), "ɑ": ((1.0, 0.1, 0.0, 0, 0), _V), "æ": ((0.85, 0.0, 0.35, 0, 0), _V),
    "ɒ": ((0.9, 0.35, 0.0, 0, 0), _V), "ɔ": ((0.75, 0.55, 0.0, 0, 0), _V), "ʌ": ((0.7, 0.0, 0.1, 0, 0), _V),
    "ɐ": ((0.6, 0.0, 0.1, 0, 0), _V), "ə": ((0.4, 0.0, 0.05, 0, 0), 0.6), "ɚ": ((0.35, 0.3, 0.0, 0, 0), 0.8),
    "ɜ": ((0.45, 0.25, 0.0, 0, 0), _V), "ɛ": ((0.6, 0.0, 0.35, 0, 0), _V), "e": ((0.45, 0.0, 0.45, 0, 0), _V),
    "ᵻ": ((0.3, 0.0, 0.3, 0, 0), 0.6), "ɪ": ((0.3, 0.0, 0.45, 0, 0), _V), "i": ((0.2, 0.0, 0.75, 0, 0), _V),
    "o": ((0.5, 0.7, 0.0, 0, 0), _V), "ʊ": ((0.3, 0.6, 0.0, 0, 0), _V), "u": ((0.2, 0.9, 0.0, 0, 0), _V),
    "ɯ": ((0.25, 0.0, 0.3, 0, 0), _V), "y": ((0.2, 0.8, 0.0, 0, 0), _V),
    # bilabials and labiodentals
    "p": ((0.0, 0.0, 0.0, 1, 0), 1.5), "b": ((0.0, 0.0, 0.0, 1, 0), 1.5), "m": ((0.0, 0.0, 0.0, 1, 0), 1.5),
    "f": ((0.1, 0.0, 0.1, 0, 1), 1.5), "v": ((0.1, 0.0, 0.1, 0, 1), 1.5),
    # rounded and postalveolar
    "w": ((0.15, 1.0, 0.0, 0, 0), 3.0), "ʍ": ((0.15, 1.0, 0.0, 0, 0), 3.0),
    "ʃ": ((0.2, 0.55, 0.0, 0, 0), 2.0), "ʒ": ((0.2, 0.55, 0.0, 0, 0), 2.0),
    "ɹ": ((0.2, 0.35, 0.0, 0, 0), 1.5), "r": ((0.2, 0.35, 0.0, 0, 0), 1.5),
    # other consonants
    "s": ((0.1, 0.0, 0.35, 0, 0), 2.0), "z": ((0.1, 0.0, 0.35, 0, 0), 2.0),
    "θ": ((0.2, 0.0, 0.1, 0, 0), 1.0), "ð": ((0.2, 0.0, 0.1, 0, 0), 1.0),
    "t": ((0.25, 0.0, 0.1, 0, 0), 0.7), "d": ((0.25, 0.0, 0.1, 0, 0), 0.7), "n": ((0.25, 0.0, 0.1, 0, 0), 0.7),
    "l": ((0.3, 0.0, 0.05, 0, 0), 0.7), "ɾ": ((0.3, 0.0, 0.05, 0, 0), 0.5), "ɬ": ((0.25, 0.0, 0.1, 0, 0), 0.7),
    "k": ((0.3, 0.0, 0.0, 0, 0), 0.6), "ɡ": ((0.3, 0.0, 0.0, 0, 0), 0.6), "g": ((0.3, 0.0, 0.0, 0, 0), 0.6),
    "ŋ": ((0.3, 0.0, 0.0, 0, 0), 0.6), "x": ((0.3, 0.0, 0.0, 0, 0), 0.6),
    "j": ((0.15, 0.0, 0.45, 0, 0), 1.0), "h": ((0.35, 0.0, 0.0, 0, 0), 0.2), "ʔ": ((0.1, 0.0, 0.0, 0, 0), 0.5),
}
SILENCE = ((0.0, 0.0, 0.0, 0.0, 0.0), 2.0)
UNKNOWN = ((0.25, 0.0, 0.0, 0.0, 0.0), 0.4)
# Parameters on which a segment is far more dominant than its own vowel-like weight.
CLOSURE_DOMINANCE = 10.0  # /p b m/ on "close"
LABIO_DOMINANCE = 8.0  # /f v/ on "labio"

# Lip closure and lip-teeth contact are brief gestures: their influence decays
# this much faster than the others'.
FAST_DECAY = (1.0, 1.0, 1.0, 0.4, 0.5)

STRESS_MARKS = "ˈˌ"
LENGTH_MARK = "ː"
SILENT_SYMBOLS = set("^$.,;:!?—…-_\"'()") | {"", "sil", "sp", "pau"}


@dataclass(frozen=True)
class Segment:
    symbol: str
    start: float  # seconds
    end: float
    stressed: bool = False

    @property
    def centre(self) -> float:
        return 0.5 * (self.start + self.end)


# Consonants made with a closure (stops and nasals): the closure comes before the release.
CLOSURE_CONSONANTS = frozenset("pbmtdkɡgnŋ")
LONGEST_CLOSURE = 0.15  # seconds of a word gap given to the closure after it


def gaps_to_closures(segments: list[Segment], longest: float = LONGEST_CLOSURE) -> list[Segment]:
    """Give a word gap's time to the stop or nasal after it.

    Piper times a word-initial stop from its release: the closure before it
    (silence for /p/, a voice bar for /b/, the murmur of /m/) is the word
    gap's time; on the corpus such gaps are 8 dB (before /p/) and 16 dB
    (before /b/) quieter than the stop's own segment (medians). Real speech,
    and the forced aligner we evaluate with,
    count the closure as part of the stop, and the lips are shut through it.
    So the stop starts where the gap starts, up to ``longest`` seconds before
    the gap ends; the rest of a longer gap is a pause (silence).
    """
    out: list[Segment] = []
    for seg in segments:
        prev = out[-1] if out else None
        if prev is not None and prev.symbol == " " and seg.symbol in CLOSURE_CONSONANTS:
            start = max(prev.start, prev.end - longest)
            if start > prev.start:
                out[-1] = Segment("sil", prev.start, start)
            else:
                out.pop()
            seg = Segment(seg.symbol, start, seg.end, seg.stressed)
        out.append(seg)
    return out


def segments_from_alignment(symbols: list[str], durations: list[float], offset: float = 0.0) -> list[Segment]:
    """Piper-style (IPA symbol, seconds) alignments -> phone segments.

    Stress marks lend their time to the next symbol (and mark it stressed),
    length marks to the previous one; word spaces are kept as weak, transparent
    segments, except that one before a stop or nasal holds its closure and goes
    to it (:func:`gaps_to_closures`); punctuation and utterance start/end become
    silence.
    """
    out: list[Segment] = []
    t = offset
    pending, stressed = 0.0, False
    for sym, dur in zip(symbols, durations):
        if sym in STRESS_MARKS:
            pending += dur
            stressed = True
            t += dur
            continue
        if sym == LENGTH_MARK and out:
            last = out[-1]
            out[-1] = Segment(last.symbol, last.start, last.end + dur, last.stressed)
            t += dur
            continue
        name = "sil" if sym in SILENT_SYMBOLS else sym
        out.append(Segment(name, t - pending, t + dur, stressed and name not in ("sil", " ")))
        t += dur
        pending, stressed = 0.0, False
    return gaps_to_closures(out)


@dataclass(frozen=True)
class SpeakerStyle:
    """How one synthetic speaker articulates."""

    name: str
    amplitude: float = 1.0  # overall mouth motion
    jaw: float = 1.0  # jaw share
    lips: float = 1.0  # rounding / spreading / labiodental share
    tempo: float = 1.0  # TTS length scale (> 1 is slower)
    coarticulation: float = 0.05  # seconds: dominance decay outside a segment's core
    brow: float = 1.0  # upper-face activity


# Six speakers that span amplitude, jaw vs lips and tempo; the style sliders expose them.
SPEAKERS: tuple[SpeakerStyle, ...] = (
    SpeakerStyle("broad", amplitude=1.4, jaw=1.05, lips=1.1, brow=1.3),
    SpeakerStyle("subtle", amplitude=0.55, brow=0.5),
    SpeakerStyle("jaw", jaw=1.35, lips=0.55),
    SpeakerStyle("lips", jaw=0.7, lips=1.6),
    SpeakerStyle("brisk", tempo=0.82, coarticulation=0.032),
    SpeakerStyle("relaxed", amplitude=0.85, tempo=1.15, coarticulation=0.075, brow=0.7),
)

JAW_MAX_RADIANS = 0.16  # jaw rotation at jaw = 1 and amplitude = 1 (about 15 mm lip opening on FLAME)


def targets(seg: Segment) -> tuple[np.ndarray, np.ndarray]:
    """Targets (5,) and dominances (5,) of one segment."""
    if seg.symbol == "sil":
        tgt, dom = SILENCE
    elif seg.symbol == " ":
        return np.zeros(5), np.full(5, 0.02)  # word gap: let the neighbours speak
    else:
        tgt, dom = PHONEMES.get(seg.symbol, UNKNOWN)
    d = np.full(5, dom, dtype=np.float64)
    tgt = np.asarray(tgt, dtype=np.float64)
    if tgt[3] > 0:
        d[3] = CLOSURE_DOMINANCE
        d[0] = CLOSURE_DOMINANCE * 0.3
    if tgt[4] > 0:
        d[4] = LABIO_DOMINANCE
    if seg.stressed:
        tgt = tgt * np.array([1.15, 1.0, 1.0, 1.0, 1.0])
    return tgt, d


def parameter_tracks(segments: list[Segment], times: np.ndarray, decay: float) -> np.ndarray:
    """Coarticulated parameter values at ``times`` (T,): (T, 5)."""
    tg, dm = zip(*(targets(s) for s in segments))
    tg, dm = np.stack(tg), np.stack(dm)  # (S, 5)
    centre = np.array([s.centre for s in segments])
    core = np.array([0.25 * (s.end - s.start) for s in segments])
    dist = np.maximum(np.abs(times[:, None] - centre[None]) - core[None], 0.0)  # (T, S)
    rate = 1.0 / (decay * np.asarray(FAST_DECAY))  # (5,)
    w = np.exp(-dist[:, :, None] * rate) * dm[None]  # (T, S, 5)
    return (w * tg[None]).sum(1) / np.maximum(w.sum(1), 1e-12)


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    if sigma_frames <= 0:
        return x
    r = int(np.ceil(3 * sigma_frames))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_frames) ** 2)
    k /= k.sum()
    pad = np.pad(x, ((r, r), (0, 0)), mode="edge")
    return np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(x.shape[1])], 1)


def field_coefficients(
    segments: list[Segment],
    frames: int,
    fps: float,
    style: SpeakerStyle,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rig field coefficients (frames, P) for one utterance."""
    times = np.arange(frames) / fps
    # per-utterance variation: a speaker is never exactly the same twice
    jitter = rng.uniform(0.9, 1.1, size=3)
    tracks = parameter_tracks(segments, times, style.coarticulation * rng.uniform(0.9, 1.1))
    tracks = _smooth(tracks, 0.012 * fps)  # muscles are not instantaneous
    jaw, rnd, spread, close, labio = tracks.T
    jaw_open = np.clip(jaw * (1.0 - close) * (1.0 - 0.7 * labio), 0.0, None)
    angle = JAW_MAX_RADIANS * style.amplitude * style.jaw * jitter[0] * jaw_open
    lip = style.amplitude * style.lips * jitter[1]
    coeffs = np.zeros((frames, len(FIELDS)))
    coeffs[:, FIELDS.index("jaw_cos")] = np.cos(angle) - 1.0
    coeffs[:, FIELDS.index("jaw_sin")] = np.sin(angle)
    coeffs[:, FIELDS.index("upper_lip")] = 2.0 * style.amplitude * jaw_open
    coeffs[:, FIELDS.index("round")] = lip * rnd
    coeffs[:, FIELDS.index("spread")] = lip * spread
    coeffs[:, FIELDS.index("press")] = close * min(1.5, 0.5 + 0.5 * style.lips)
    coeffs[:, FIELDS.index("labio")] = min(1.3, lip) * labio
    coeffs[:, FIELDS.index("brow")] = style.brow * jitter[2] * brow_track(segments, times, fps, rng)
    return coeffs


def brow_track(segments: list[Segment], times: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Small upper-face motion: lifts on stressed vowels plus slow drift while speaking, 0..~1."""
    speaking = np.zeros_like(times)
    pulses = np.zeros_like(times)
    for s in segments:
        if s.symbol not in ("sil", " "):
            speaking[(times >= s.start) & (times < s.end)] = 1.0
            if s.stressed and s.symbol in PHONEMES and PHONEMES[s.symbol][1] >= 0.6 and rng.random() < 0.5:
                pulses += rng.uniform(0.3, 0.8) * np.exp(-0.5 * ((times - s.centre) / 0.12) ** 2)
    drift = _smooth(rng.normal(size=(len(times), 1)), 0.4 * fps)[:, 0]
    drift = 0.25 * (drift - drift.min()) / max(np.ptp(drift), 1e-9)
    speaking = _smooth(speaking[:, None], 0.15 * fps)[:, 0]
    return np.clip(pulses + drift * speaking, 0.0, 1.0)
