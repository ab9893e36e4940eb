#!/usr/bin/env bash
# Rebuild the bundled models from scratch: corpus, both stages for FLAME and BIWI,
# export to models/, then every evaluation. Resumable: finished steps are skipped
# (corpus files, stage checkpoints), interrupted stages resume from their last epoch.
# About 5 hours on a 2-core CPU (see models/MODEL_CARD.md for the measured times).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/setup_env.sh
export CODETALKER_SHARED="${CODETALKER_SHARED:-$root/../shared}"
py=.venv/bin/python
$py tools/make_corpus.py --out data/synth --per-speaker 80 --seed 1 --shared "$CODETALKER_SHARED"
for topo in flame biwi; do
    recipe="configs/bundled_${topo}.yaml"
    run="$($py -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["run_dir"])' "$recipe")"
    [ -f "$run/stage1.pt" ] || $py tools/train.py stage1 --recipe "$recipe"
    [ -f "$run/stage2.pt" ] || $py tools/train.py stage2 --recipe "$recipe"
    $py tools/train.py finetune --recipe "$recipe"   # skips the fine-tuning parts already done
    $py tools/train.py export --recipe "$recipe"
done
mkdir -p out/eval
for topo in flame biwi; do
    model="models/codetalker_${topo}_synth.safetensors"
    $py tools/eval_synthetic.py --model "$model" --recipe "configs/bundled_${topo}.yaml" --json "out/eval/${topo}_synthetic.json"
    $py tools/eval_real_speech.py --model "$model" --per-style --json "out/eval/${topo}_real_speech.json"
    $py tools/eval_style.py --model "$model" --json "out/eval/${topo}_style.json"
    $py tools/eval_style.py --model "$model" --recipe "configs/bundled_${topo}.yaml" --json "out/eval/${topo}_style_with_synthetic.json"
done
