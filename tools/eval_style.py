"""Style check: blend from the largest-amplitude learned style to the smallest and measure the mouth.

    .venv/bin/python tools/eval_style.py --model models/codetalker_flame_synth.safetensors

Finds the styles (training subjects) with the largest and smallest mouth
opening on the real speech clips, then blends between them in steps of 0.1
(emb = (1 - w) * big + w * small, as the style sliders do) and prints the
mean 95th-percentile mouth opening per step, and whether it is monotonic.

Four short clips make a noisy measure (a code flip moves one clip's p95 by a
millimetre), so ``--recipe`` adds the held-out synthetic test clips of that
recipe's data (unseen in training) to the real ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.eval_real_speech import TRANSCRIPTS, topology_rig  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", "../shared"))
    ap.add_argument("--steps", type=int, default=11)
    ap.add_argument("--json", default=None)
    ap.add_argument("--recipe", default=None, help="also measure on this recipe's test clips (held-out synthetic)")
    ap.add_argument("--no-gate", action="store_true", help="without the default silence gate (the model alone)")
    args = ap.parse_args(argv)

    from codetalker_blender.core.api import DEFAULT_GATE, animate
    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.core.checkpoint import load_model_file
    from codetalker_blender.training.metrics import mouth_opening

    model = load_model_file(args.model)
    rig = topology_rig(model.cfg.num_vertices, args.shared)
    clips = [load_audio(os.path.join(args.shared, "audio", n)) for n in TRANSCRIPTS]
    if args.recipe:
        from codetalker_blender.training.data import clips as data_clips
        from tools.train import data_config, load_recipe

        clips += [load_audio(c.wav) for c in data_clips(data_config(load_recipe(args.recipe)), "test")]
    gate = None if args.no_gate else DEFAULT_GATE
    print(f"{len(clips)} clips, silence gate {gate or 'off'}")

    def per_clip(style) -> list[float]:
        """95th-percentile mouth opening of each clip, FLAME-equivalent mm."""
        p95 = []
        for samples in clips:
            v = animate(model, samples, rig.template, style, device="cpu", gate=gate).vertices
            p95.append(float(np.percentile(mouth_opening(v, rig.template, rig.upper_lip, rig.lower_lip), 95)))
        return [p / rig.scale * 1000 for p in p95]

    clip_p95 = {s: per_clip(s) for s in model.cfg.subjects}
    per_style = {s: float(np.mean(p)) for s, p in clip_p95.items()}
    big = max(per_style, key=per_style.get)
    small = min(per_style, key=per_style.get)
    print("mean p95 mouth opening per style (mm): " + ", ".join(f"{s} {a:.2f}" for s, a in per_style.items()))
    curve, curve_clips = [], []
    for w in np.linspace(0.0, 1.0, args.steps):
        p = per_clip({big: 1.0 - w, small: w}) if 0 < w < 1 else clip_p95[big if w == 0 else small]
        curve.append((float(w), float(np.mean(p))))
        curve_clips.append(p)
        shown = " ".join(f"{x:.2f}" for x in p[:8]) + (" ..." if len(p) > 8 else "")
        print(f"w({small}) = {w:.2f}: {curve[-1][1]:.3f} mm (per clip: {shown})")
    diffs = np.diff([a for _, a in curve])
    monotonic = bool(np.all(diffs <= 0) or np.all(diffs >= 0))
    print(f"{big} -> {small}: {'monotonic' if monotonic else 'NOT monotonic'} "
          f"({curve[0][1]:.2f} -> {curve[-1][1]:.2f} mm)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model": args.model, "clips": len(clips), "gate": gate is not None, "per_style_mm": per_style, "from": big, "to": small,
                       "curve": curve, "curve_per_clip_mm": curve_clips, "monotonic": monotonic}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
