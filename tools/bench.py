"""Inference benchmark: our exact and fast modes next to the reference algorithm, in one run.

    .venv/bin/python tools/bench.py --dataset vocaset --seconds 10
    .venv/bin/python tools/bench.py --seconds 5 20 --no-baseline

Models are the published sizes with random weights (no checkpoint needed).
Speech is real clips from the shared folder, repeated to the wanted length.
The baseline is the published predict(): whole-prefix recompute at every step
(codetalker_blender/core/reference.py). Every figure is measured in this run.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codetalker_blender.core.audio import load_audio  # noqa: E402
from codetalker_blender.core.audio_encoder import encode_audio, normalise  # noqa: E402
from codetalker_blender.core.config import published_config  # noqa: E402
from codetalker_blender.core.inference import DecodeOptions, generate_motion  # noqa: E402
from codetalker_blender.core.predictor import CodeTalker  # noqa: E402
from codetalker_blender.core.reference import reference_motion  # noqa: E402


def speech(seconds: float, shared: str) -> np.ndarray:
    clips = [load_audio(os.path.join(shared, "audio", n)) for n in
             ("arctic_a0009.wav", "arctic_a0007.wav", "voca_test_sentence.wav", "one_two_three.wav")]
    audio = np.concatenate(clips)
    reps = int(np.ceil(seconds * 16000 / audio.size))
    return np.tile(audio, reps)[: int(seconds * 16000)]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="vocaset", choices=("vocaset", "BIWI"))
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0])
    p.add_argument("--no-baseline", action="store_true", help="skip the reference algorithm")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED",
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = published_config(args.dataset)
    model, t_build = timed(lambda: CodeTalker(cfg).eval())
    print(f"{args.dataset} published size, random weights: "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters (built in {t_build:.1f}s); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    style = model.style_embedding(torch.ones(len(cfg.subjects)))
    rows = []
    for seconds in args.seconds:
        audio = normalise(torch.from_numpy(speech(seconds, args.shared)))
        with torch.no_grad():
            (feats, frames), t_audio = timed(lambda: encode_audio(model.audio_encoder, audio, cfg.timing))
            exact, t_exact = timed(lambda: generate_motion(model, feats, frames, style, DecodeOptions.exact()))
            fast, t_fast = timed(lambda: generate_motion(model, feats, frames, style, DecodeOptions.fast()))
            row = dict(seconds=seconds, frames=frames, audio=t_audio, exact=t_exact, fast=t_fast,
                       fast_err=float((fast - exact).abs().max()))
            if not args.no_baseline:
                ref, t_ref = timed(lambda: reference_motion(model, feats, frames, style))
                row.update(reference=t_ref, exact_err=float((ref - exact).abs().max()))
        rows.append(row)
        print(row, flush=True)

    print()
    print("| clip | frames | audio enc | exact | fast | reference | exact speed-up | fast speed-up "
          "| exact RTF | exact vs ref max err | fast vs exact max err |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = r.get("reference")
        total_exact = r["audio"] + r["exact"]
        total_fast = r["audio"] + r["fast"]
        total_ref = r["audio"] + ref if ref else None
        print(f"| {r['seconds']:g} s | {r['frames']} | {r['audio']:.2f} s | {total_exact:.1f} s | {total_fast:.1f} s | "
              + (f"{total_ref:.1f} s | {total_ref / total_exact:.1f}x | {total_ref / total_fast:.1f}x | "
                 if ref else "- | - | - | ")
              + f"{total_exact / r['seconds']:.2f} | "
              + (f"{r['exact_err']:.2g} | " if ref else "- | ")
              + f"{r['fast_err']:.2g} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MiB (times include audio encoding)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
