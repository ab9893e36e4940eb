"""Paired speed test: the inference code of another revision against the working tree, in one process.

    .venv/bin/python tools/bench_ab.py --base a831670
    .venv/bin/python tools/bench_ab.py --base HEAD~3 --model models/codetalker_biwi_synth.safetensors --pairs 6

This VM's speed drifts by tens of percent from minute to minute, so two
benchmark runs minutes apart do not compare code. Here the package of
``--base`` (taken with ``git archive``, imported under another name; the core
uses relative imports) and the working tree's run in turns, on the same clip
(real speech repeated to ``--seconds``), in exact mode with audio encoding,
each pair back to back and in alternating order. It prints each side's
median time per stage, the median of the per-pair ratios (base / new: above
1 means the working tree is faster) and the largest difference between the
two outputs. The first pair is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from bench import speech  # noqa: E402


def import_revision(rev: str, into: str):
    """The ``codetalker_blender`` package of git revision ``rev``, imported as ``ctbase``."""
    data = subprocess.run(["git", "-C", ROOT, "archive", rev, "codetalker_blender"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    os.rename(os.path.join(into, "codetalker_blender"), os.path.join(into, "ctbase"))
    sys.path.insert(0, into)
    return importlib.import_module("ctbase.core")


def load_side(pkg: str, model_path: str):
    checkpoint = importlib.import_module(f"{pkg}.core.checkpoint")
    inference = importlib.import_module(f"{pkg}.core.inference")
    audio_encoder = importlib.import_module(f"{pkg}.core.audio_encoder")
    model = checkpoint.load_model_file(model_path).float().eval()
    return model, inference, audio_encoder


def run_once(side, audio: torch.Tensor) -> tuple[dict, torch.Tensor]:
    model, inference, audio_encoder = side
    n = model.learnable_style_emb.weight.shape[0]
    stages: dict = {}
    with torch.no_grad():
        style = model.style_embedding(torch.full((n,), 1.0))
        t0 = time.perf_counter()
        feats, frames = audio_encoder.encode_audio(model.audio_encoder, audio, model.cfg.timing)
        stages["audio"] = time.perf_counter() - t0
        motion = inference.generate_motion(model, feats, frames, style, inference.DecodeOptions.exact(),
                                           timings=stages)
        stages["total"] = time.perf_counter() - t0
    return stages, motion


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="git revision to compare the working tree against")
    p.add_argument("--model", default=os.path.join(ROOT, "models", "codetalker_flame_synth.safetensors"))
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--pairs", type=int, default=8, help="counted pairs (one more runs first as a warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", os.path.join(ROOT, "..", "shared")))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    audio = torch.from_numpy(speech(args.seconds, args.shared)).float()
    with tempfile.TemporaryDirectory() as tmp:
        import_revision(args.base, tmp)
        sides = {"base": load_side("ctbase", args.model), "new": load_side("codetalker_blender", args.model)}
        times: dict = {"base": [], "new": []}
        outputs: dict = {}
        for k in range(args.pairs + 1):
            order = ("base", "new") if k % 2 == 0 else ("new", "base")
            for name in order:
                stages, outputs[name] = run_once(sides[name], audio)
                if k:
                    times[name].append(stages)
    print(f"{os.path.basename(args.model)}, {args.seconds:g} s of speech, exact mode, {args.threads} threads, "
          f"{args.pairs} pairs; base = {args.base}, new = working tree")
    for name, runs in times.items():
        medians = {stage: statistics.median(r[stage] for r in runs) for stage in runs[0]}
        print(f"  {name:4s} median: " + ", ".join(f"{stage} {t:.3f} s" for stage, t in medians.items()))
    ratios = [b["total"] / n["total"] for b, n in zip(times["base"], times["new"])]
    print(f"  speed-up base/new: median {statistics.median(ratios):.3f} (per pair: "
          + " ".join(f"{r:.2f}" for r in ratios) + ")")
    print(f"  largest output difference: {(outputs['base'] - outputs['new']).abs().max().item():.3g}")


if __name__ == "__main__":
    main()
