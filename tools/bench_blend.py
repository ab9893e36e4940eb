"""What a style blend costs: the model's own blend against mixing the styles' motions, in one process.

    .venv/bin/python tools/bench_blend.py
    .venv/bin/python tools/bench_blend.py --seconds 30 --mode fast --repeats 5

For each bundled model it times ``animate`` (audio encoding and silence gate
included) on real speech repeated to ``--seconds``, with three style settings
in turns: two styles blended in the model (one run), the same two styles'
motions mixed (``blend="motion"``: two runs) and all styles mixed (one run
each). It prints the median time of each and its ratio to the model's blend.
The first round is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from bench import speech  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mode", default="exact", choices=("exact", "fast"))
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up")
    ap.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", os.path.join(ROOT, "..", "shared")))
    args = ap.parse_args(argv)

    import numpy as np

    from codetalker_blender.core.api import animate
    from codetalker_blender.core.checkpoint import load_model_file

    audio = speech(args.seconds, args.shared)
    for path in sorted(glob.glob(os.path.join(ROOT, "models", "*.safetensors"))):
        model = load_model_file(path)
        subjects = model.cfg.subjects
        template = np.zeros((model.cfg.num_vertices, 3), np.float32)
        two = {subjects[0]: 0.5, subjects[1]: 0.5}
        settings = {"two styles, model blend": (two, "model"), "two styles, motions mixed": (two, "motion"),
                    f"all {len(subjects)} styles, motions mixed": (None, "motion")}
        times: dict[str, list[float]] = {k: [] for k in settings}
        for round_ in range(args.repeats + 1):
            for name, (style, blend) in settings.items():
                t0 = time.perf_counter()
                animate(model, audio, template, style, device="cpu", mode=args.mode, blend=blend)
                if round_:
                    times[name].append(time.perf_counter() - t0)
        base = statistics.median(next(iter(times.values())))
        print(f"{os.path.basename(path)}, {args.seconds:g} s, {args.mode} mode, medians of {args.repeats}:")
        for name, t in times.items():
            print(f"  {name:28s} {statistics.median(t):6.2f} s  {statistics.median(t) / base:4.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
