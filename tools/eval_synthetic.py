"""LVE and FDD (as the paper defines them) on held-out synthetic sentences.

    .venv/bin/python tools/eval_synthetic.py --model models/codetalker_flame_synth.safetensors \
        --recipe configs/bundled_flame.yaml [--split test] [--mode fast]

Each test clip is animated from its (clean) audio in its speaker's style and
compared with the procedural ground truth. LVE: per frame the largest
squared lip-vertex error, averaged over frames and clips. FDD: upper-face
dynamics deviation (ground truth minus prediction), averaged over clips.
Both are printed in the dataset's units and in FLAME-equivalent mm^2.
Also printed: the same metrics for a still face (the template), as a floor,
and the bilabial closure rate (opening under 25 % of the clip's 95th
percentile at the middle of /p b m/, from the corpus's own phone timing),
for the model and for the ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.eval_real_speech import topology_rig  # noqa: E402
from tools.train import data_config, load_recipe  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--mode", default="exact", choices=["exact", "fast"])
    ap.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", "../shared"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-gate", action="store_true", help="without the default silence gate (the model alone)")
    args = ap.parse_args(argv)

    from codetalker_blender.core.api import DEFAULT_GATE, animate
    from codetalker_blender.core.checkpoint import load_model_file
    from codetalker_blender.training.corpus import read_segments
    from codetalker_blender.training.data import clips
    from codetalker_blender.training.metrics import fdd, lve, mouth_opening, opening_at

    model = load_model_file(args.model)
    rig = topology_rig(model.cfg.num_vertices, args.shared)
    data = data_config(load_recipe(args.recipe))
    test = clips(data, args.split)
    if not test:
        raise SystemExit(f"no {args.split} clips under {data.root}")
    mm2 = 1e6 / rig.scale**2  # dataset units^2 -> FLAME-equivalent mm^2
    with open(os.path.join(data.root, "corpus.json"), encoding="utf-8") as fh:
        speech = json.load(fh)["speech"]

    def closures(motion, template, segs, fps):
        op = mouth_opening(motion, template, rig.upper_lip, rig.lower_lip)
        p95 = np.percentile(op, 95)
        mids = [s.centre for s in segs if s.symbol in ("p", "b", "m")]
        return [bool(x < 0.25 * p95) for x in opening_at(op, mids, fps)]

    rows = []
    for c in test:
        gt = np.load(c.vertices)[:: c.stride].reshape(-1, model.cfg.num_vertices, 3)
        template = c.template.reshape(-1, 3)
        pred = animate(model, c.wav, template, c.subject, device="cpu", mode=args.mode,
                       gate=None if args.no_gate else DEFAULT_GATE).vertices
        t = min(len(gt), len(pred))
        gt, pred = gt[:t], pred[:t]
        still = np.repeat(template[None], t, axis=0)
        segs = read_segments(os.path.join(speech, "segments", c.name + ".json"))
        fps = model.cfg.fps
        rows.append({
            "closures": closures(pred, template, segs, fps),
            "closures_truth": closures(gt, template, segs, fps),
            "clip": c.name,
            "frames": t,
            "lve": lve(pred, gt, rig.lip_vertices),
            "fdd": fdd(pred, gt, template, rig.upper_face_vertices),
            "lve_still": lve(still, gt, rig.lip_vertices),
        })
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("lve", "fdd", "lve_still")}
    print(f"{len(rows)} {args.split} clips, mode {args.mode}, silence gate {'off' if args.no_gate else DEFAULT_GATE}")
    print(f"LVE  {mean['lve']:.3e} units^2 = {mean['lve'] * mm2:.3f} mm^2 (a still face: {mean['lve_still'] * mm2:.3f} mm^2)")
    print(f"FDD  {mean['fdd']:.3e} units^2 = {mean['fdd'] * mm2:.4f} mm^2")
    hits = sum(sum(r["closures"]) for r in rows)
    truth = sum(sum(r["closures_truth"]) for r in rows)
    total = sum(len(r["closures"]) for r in rows)
    mean["closure_rate"] = hits / max(total, 1)
    print(f"bilabial closures: model {hits}/{total} = {hits / max(total, 1):.0%}, ground truth {truth}/{total}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model": args.model, "split": args.split, "mode": args.mode, "gate": not args.no_gate, "mean": mean,
                       "mm2_per_unit2": mm2, "clips": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
