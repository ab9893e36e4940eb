"""``codetalker``: speech to facial animation from the command line.

    codetalker animate --config stage2.yaml --stage1 s1.pth.tar --stage2 s2.pth.tar \
        --audio speech.wav --template head.ply --style F2=0.7 --style M5=0.3 --out anim.npz
    codetalker animate --audio speech.wav --template FLAME_sample.ply --out anim.npz   (the bundled model)
    codetalker animate --model models/codetalker_flame_synth.safetensors --audio speech.wav ...
    codetalker info FILE

User mistakes print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .core.audio import add_gate_arguments, gate_from_args
from .core.style import add_blend_argument

EXIT_USAGE = 2


class _Progress:
    """Frames done, rate and ETA on stderr, at most a few times a second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.start = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < total and now - self.last < 0.25:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / done * (total - done) if done else 0.0
        end = "\n" if done == total else ""
        sys.stderr.write(f"\rframe {done}/{total} ({100 * done // total}%)  {elapsed:5.1f}s elapsed, ETA {eta:5.1f}s{end}")
        sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codetalker", description="CodeTalker speech-driven 3D facial animation")
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser("animate", help="animate a template mesh from speech")
    src = a.add_argument_group("model (the bundled one for the template's topology, --model, "
                               "or --config with --stage1/--stage2)")
    src.add_argument("--model", help="our format: a .safetensors model with its config (default: bundled)")
    src.add_argument("--config", help="published stage2.yaml/demo.yaml, or our JSON config")
    src.add_argument("--stage1", help="published stage-1 (VQ autoencoder) .pth.tar")
    src.add_argument("--stage2", help="published stage-2 (predictor) .pth.tar")
    a.add_argument("--audio", required=True, help="speech file (wav, flac, ogg, mp3; any rate and channels)")
    a.add_argument("--template", required=True, help="neutral mesh: .npy (V*3 or Vx3), .ply or .obj")
    a.add_argument("--style", action="append", default=[], metavar="NAME[=WEIGHT]",
                   help="training subject by name or index; repeat with weights to blend (default: all equally)")
    add_blend_argument(a)
    a.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda or mps")
    a.add_argument("--mode", choices=("auto", "exact", "fast"), default="auto",
                   help="exact: the published algorithm; fast: bounded windows, linear time; "
                        "auto (default): exact up to 600 frames, fast beyond")
    add_gate_arguments(a)
    a.add_argument("--out", required=True, help=".npy (frames, V*3) float32, or .npz with fps and metadata")
    a.add_argument("--quiet", action="store_true", help="no progress output")

    i = sub.add_parser("info", help="show what a checkpoint, model or config file contains")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="print JSON")
    return p


def _animate(args) -> int:
    import numpy as np

    from .core import animate, load_model
    from .core.errors import ConfigError
    from .core.style import parse_style_args

    out = os.path.abspath(args.out)
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npy", ".npz"):
        raise ConfigError(f"--out must end in .npy or .npz, not {ext or '(nothing)'}")
    if not os.path.isdir(os.path.dirname(out)):
        raise ConfigError(f"output folder does not exist: {os.path.dirname(out)}")
    if args.model and (args.config or args.stage1 or args.stage2):
        raise ConfigError("give either --model or --config/--stage1/--stage2, not both")
    gate = gate_from_args(args)
    template = args.template
    if not args.model and not args.config:
        from .core.bundled import bundled_model_for
        from .core.mesh import load_template

        template = load_template(args.template)  # read once: its size picks the model
        count = len(template)
        args.model = bundled_model_for(count)
        if not args.model:
            raise ConfigError(
                f"no bundled model fits a template of {count} vertices: use --model, "
                "or --config with --stage1 and --stage2"
            )

    model = load_model(model=args.model, config=args.config, stage1=args.stage1, stage2=args.stage2)
    style = parse_style_args(args.style, model.cfg.subjects)
    progress = _Progress(not args.quiet)
    t0 = time.perf_counter()
    result = animate(model, args.audio, template, style, device=args.device, mode=args.mode, progress=progress,
                     gate=gate, blend=args.blend)
    elapsed = time.perf_counter() - t0

    frames = result.vertices.reshape(result.vertices.shape[0], -1).astype(np.float32)
    tmp = out + ".partial" + ext
    if ext == ".npy":
        np.save(tmp, frames)
    else:
        meta = dict(result.info, audio=os.path.abspath(args.audio), template=os.path.abspath(args.template),
                    model=args.model or args.stage2, dataset=model.cfg.dataset)
        np.savez(tmp, vertices=frames, fps=np.float32(result.fps), metadata=json.dumps(meta))
    os.replace(tmp, out)
    if not args.quiet:
        seconds = result.info.get("seconds", 0.0)
        print(f"wrote {out}: {frames.shape[0]} frames at {result.fps:g} fps, {frames.shape[1] // 3} vertices "
              f"({elapsed:.1f}s for {seconds:.1f}s of audio)", file=sys.stderr)
    return 0


def _info(args) -> int:
    from .core.checkpoint import describe_file

    info = describe_file(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        print(f"{key:>22}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .core.errors import CodeTalkerError

    try:
        return _animate(args) if args.command == "animate" else _info(args)
    except CodeTalkerError as exc:
        message = " ".join(str(exc).split())
        print(f"codetalker: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("codetalker: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
