"""Convert published CodeTalker checkpoints into our format (safetensors + JSON config).

    python tools/convert_checkpoint.py --config stage2.yaml --stage1 s1.pth.tar \
        --stage2 s2.pth.tar --out models/vocaset.safetensors

The result loads with ``codetalker animate --model``; the JSON config is
stored in the safetensors metadata and written beside it for people to read.
Every key and shape is checked on the way in.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codetalker_blender.core import CodeTalkerError, load_model  # noqa: E402
from codetalker_blender.core.checkpoint import save_model  # noqa: E402
from codetalker_blender.core.config import sidecar_path  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="published stage2.yaml/demo.yaml")
    p.add_argument("--stage1", help="stage-1 .pth.tar (default: the YAML's vqvae_pretrained_path)")
    p.add_argument("--stage2", required=True, help="stage-2 .pth.tar")
    p.add_argument("--out", required=True, help="output .safetensors path")
    args = p.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        print("convert: error: --out must end in .safetensors", file=sys.stderr)
        return 2
    try:
        model = load_model(config=args.config, stage1=args.stage1, stage2=args.stage2)
        save_model(model, args.out)
    except CodeTalkerError as exc:
        print(f"convert: error: {exc}", file=sys.stderr)
        return 2
    size = os.path.getsize(args.out) / 1e6
    print(f"wrote {args.out} ({size:.1f} MB) and {sidecar_path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
