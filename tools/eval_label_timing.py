"""How the corpus's phone timing sits against an acoustic aligner's.

    .venv/bin/python tools/eval_label_timing.py --speech data/synth/speech --numbers 1 60

For the chosen clips of ``<speech>`` it aligns the clip's text with
pocketsphinx and compares, phone by phone, the middles of the lip consonants
(/p b m f v/) with the corpus's own segments (``<speech>/segments``):
median and quartiles of pocketsphinx minus corpus, in ms, per phone, for the
Piper and the espeak-ng clips apart. A negative median means the corpus's
labels are late against the audio, so motion timed from them lags the
speech. As a check of the aligner itself it also compares pocketsphinx with
the labels of ``<shared>/audio/arctic_a0009_phone.lab``.

Clips whose alignment fails, or whose lip consonants do not pair up one to
one (pocketsphinx's dictionary and the synthesiser's phonemiser disagree), are
counted and left out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pocketsphinx (ARPAbet) -> the corpus's IPA symbol
LIP_PHONES = {"P": "p", "B": "b", "M": "m", "F": "f", "V": "v"}


def offsets(samples: np.ndarray, text: str, segments) -> dict[str, list[float]] | None:
    """Per lip phone, pocketsphinx middle minus corpus middle (s), or None when they do not pair up."""
    from codetalker_blender.training.metrics import force_align

    words = " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())
    try:
        phones = force_align(samples, words)
    except Exception:  # pocketsphinx raises bare RuntimeError and ValueError alike
        return None
    heard = [p for p in phones if p.name in LIP_PHONES]
    labelled = [s for s in segments if s.symbol in LIP_PHONES.values()]
    if [LIP_PHONES[p.name] for p in heard] != [s.symbol for s in labelled]:
        return None
    out: dict[str, list[float]] = {}
    for p, s in zip(heard, labelled):
        out.setdefault(s.symbol, []).append(p.middle - s.centre)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speech", default="data/synth/speech")
    ap.add_argument("--numbers", type=int, nargs=2, default=[1, 60], metavar=("FIRST", "LAST"),
                    help="sentence numbers to use, per speaker")
    ap.add_argument("--subjects", nargs="*", default=None, help="speaker subjects (default: all)")
    ap.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", "../shared"))
    args = ap.parse_args(argv)

    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.training.corpus import read_segments
    from codetalker_blender.training.data import parse_name
    from codetalker_blender.training.metrics import force_align, read_hts_labels

    with open(os.path.join(args.speech, "speech.json"), encoding="utf-8") as fh:
        clips = json.load(fh)["clips"]
    found: dict[str, dict[str, list[float]]] = {}
    skipped = used = 0
    for name, info in sorted(clips.items()):
        subject, number = parse_name(name)
        if not args.numbers[0] <= number <= args.numbers[1]:
            continue
        if args.subjects and subject not in args.subjects:
            continue
        synth = "espeak-ng" if info.get("voice", "").startswith("espeak") else "Piper"
        segs = read_segments(os.path.join(args.speech, "segments", name + ".json"))
        got = offsets(load_audio(os.path.join(args.speech, "wav", name + ".wav")), info["text"], segs)
        if got is None:
            skipped += 1
            continue
        used += 1
        for k, v in got.items():
            found.setdefault(synth, {}).setdefault(k, []).extend(v)
    print(f"{used} clips aligned, {skipped} left out (alignment failed or lip consonants did not pair up)")
    print("pocketsphinx middle minus corpus middle, ms (negative: the corpus's labels are late)")
    for synth, per in found.items():
        for k, v in sorted(per.items()) + [("all", [x for xs in per.values() for x in xs])]:
            x = np.asarray(v) * 1000
            q1, med, q3 = np.percentile(x, [25, 50, 75])
            print(f"  {synth:9s} {k:4s} n={x.size:4d}  median {med:6.1f}  quartiles {q1:6.1f} {q3:6.1f}")

    lab = os.path.join(args.shared, "audio", "arctic_a0009_phone.lab")
    if os.path.exists(lab):
        hand = [p for p in read_hts_labels(lab) if p.name.upper() in LIP_PHONES]
        samples = load_audio(os.path.join(args.shared, "audio", "arctic_a0009.wav"))
        heard = [p for p in force_align(samples, "he turned sharply and faced gregson across the table")
                 if p.name in LIP_PHONES]
        pairs = ", ".join(f"{p.name} {1000 * (p.middle - h.middle):+.0f}" for p, h in zip(heard, hand))
        print(f"aligner check, arctic_a0009: pocketsphinx middle minus the labels' middle, ms: {pairs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
