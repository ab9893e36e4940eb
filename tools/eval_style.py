"""Style check: blend from the largest-amplitude learned style to the smallest and measure the mouth.

    .venv/bin/python tools/eval_style.py --model models/codetalker_flame_synth.safetensors

Finds the styles (training subjects) with the largest and smallest mouth
opening on the real speech clips, then blends between them in steps of 0.1
(emb = (1 - w) * big + w * small, as the style sliders do) and prints the
mean 95th-percentile mouth opening per step, and whether it is monotonic; the
same for the mean opening over all frames, which one code more or less at a
peak frame moves far less.

Four short clips make a noisy measure (a code flip moves one clip's p95 by a
millimetre), so ``--recipe`` adds the held-out synthetic test clips of that
recipe's data (unseen in training) to the real ones, and ``--extra-wav`` with
``--extra-rttm`` adds more real speech: one clip per speaker turn of the RTTM
file that lasts at least 2 s. pyannote.audio's MIT-licensed wheel ships a 30 s
two-speaker recording with its turns (not part of this repository):

    pip download --no-deps pyannote.audio==3.3.2 -d /tmp/pyw
    unzip -o /tmp/pyw/pyannote_audio-3.3.2-*.whl 'pyannote/audio/sample/*' -d /tmp/pyw
    .venv/bin/python tools/eval_style.py --model M --steps 21 \
        --extra-wav /tmp/pyw/pyannote/audio/sample/sample.wav --extra-rttm /tmp/pyw/pyannote/audio/sample/sample.rttm
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codetalker_blender.core.audio import SAMPLE_RATE  # noqa: E402
from codetalker_blender.core.style import add_blend_argument  # noqa: E402
from tools.eval_real_speech import (  # noqa: E402
    TRANSCRIPTS,
    add_recording_arguments,
    read_rttm,
    recording_arguments,
    topology_rig,
)


def rttm_turns(samples: np.ndarray, rttm: str, min_seconds: float = 2.0) -> list[np.ndarray]:
    """SAMPLE_RATE samples cut into the speaker turns an RTTM file lists that last ``min_seconds`` or more."""
    turns = [samples[int(onset * SAMPLE_RATE):int(onset * SAMPLE_RATE) + int(duration * SAMPLE_RATE)]
             for onset, duration in read_rttm(rttm) if duration >= min_seconds]
    if not turns:
        raise SystemExit(f"{rttm}: no speaker turn of {min_seconds} s or more")
    return turns


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", "../shared"))
    ap.add_argument("--steps", type=int, default=11)
    ap.add_argument("--json", default=None)
    ap.add_argument("--recipe", default=None, help="also measure on this recipe's test clips (held-out synthetic)")
    add_recording_arguments(ap, "more real speech, one clip per turn of 2 s or more")
    add_blend_argument(ap)
    ap.add_argument("--no-gate", action="store_true", help="without the default silence gate (the model alone)")
    args = ap.parse_args(argv)
    recording = recording_arguments(ap, args)

    from codetalker_blender.core.api import DEFAULT_GATE, animate
    from codetalker_blender.core.audio import load_audio
    from codetalker_blender.core.checkpoint import load_model_file
    from codetalker_blender.training.metrics import mouth_opening

    model = load_model_file(args.model)
    rig = topology_rig(model.cfg.num_vertices, args.shared)
    names = list(TRANSCRIPTS)
    clips = [load_audio(os.path.join(args.shared, "audio", n)) for n in names]
    if args.recipe:
        from codetalker_blender.training.data import clips as data_clips
        from tools.train import data_config, load_recipe

        test = data_clips(data_config(load_recipe(args.recipe)), "test")
        names += [f"{c.subject}/{c.name}" for c in test]
        clips += [load_audio(c.wav) for c in test]
    if recording:
        turns = rttm_turns(load_audio(recording[0]), recording[1])
        names += [f"{os.path.basename(recording[0])}#{i}" for i in range(len(turns))]
        clips += turns
    gate = None if args.no_gate else DEFAULT_GATE
    print(f"{len(clips)} clips, silence gate {gate or 'off'}, blend: {args.blend}")

    def per_clip(style) -> tuple[list[float], list[float]]:
        """Each clip's 95th-percentile and mean mouth opening, FLAME-equivalent mm."""
        p95, mean = [], []
        for samples in clips:
            v = animate(model, samples, rig.template, style, device="cpu", gate=gate, blend=args.blend).vertices
            opening = mouth_opening(v, rig.template, rig.upper_lip, rig.lower_lip) / rig.scale * 1000
            p95.append(float(np.percentile(opening, 95)))
            mean.append(float(np.mean(opening)))
        return p95, mean

    ends = {s: per_clip(s) for s in model.cfg.subjects}
    per_style = {s: float(np.mean(p)) for s, (p, _) in ends.items()}
    big = max(per_style, key=per_style.get)
    small = min(per_style, key=per_style.get)
    print("mean p95 mouth opening per style (mm): " + ", ".join(f"{s} {a:.2f}" for s, a in per_style.items()))
    ws = np.linspace(0.0, 1.0, args.steps)
    p95s, means = [], []  # per step: each clip's figure
    for w in ws:
        p, m = per_clip({big: 1.0 - w, small: w}) if 0 < w < 1 else ends[big if w == 0 else small]
        p95s.append(p)
        means.append(m)
        shown = " ".join(f"{x:.2f}" for x in p[:8]) + (" ..." if len(p) > 8 else "")
        print(f"w({small}) = {w:.2f}: p95 {np.mean(p):.3f} mm (per clip: {shown}); mean opening {np.mean(m):.3f} mm")

    results = {}
    for label, per_step in (("p95", np.array(p95s)), ("mean opening", np.array(means))):  # (steps, clips)
        curve = per_step.mean(axis=1)
        diffs, steps = np.diff(curve), np.diff(per_step, axis=0)
        ok = bool(np.all(diffs <= 0) or np.all(diffs >= 0))
        rises = [f"{ws[k]:.2f}->{ws[k + 1]:.2f}: +{d:.3f}" for k, d in enumerate(diffs) if d > 0]
        print(f"{big} -> {small}, {label}: {'monotonic' if ok else 'NOT monotonic (' + ', '.join(rises) + ' mm)'} "
              f"({curve[0]:.2f} -> {curve[-1]:.2f} mm); single clips: {int((steps > 0).sum())} of "
              f"{steps.size} steps rise, by up to {max(float(steps.max()), 0.0):.2f} mm")
        results[label] = ([(float(w), float(c)) for w, c in zip(ws, curve)], per_step.tolist(), ok)
    if args.json:
        (curve, curve_clips, monotonic), (curve_mean, curve_mean_clips, monotonic_mean) = results.values()
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model": args.model, "blend": args.blend, "clips": len(clips), "clip_names": names,
                       "gate": gate is not None, "per_style_mm": per_style, "from": big, "to": small,
                       "curve": curve, "curve_per_clip_mm": curve_clips, "monotonic": monotonic,
                       "curve_mean_opening": curve_mean, "curve_mean_opening_per_clip_mm": curve_mean_clips,
                       "monotonic_mean_opening": monotonic_mean}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
