#!/usr/bin/env bash
# Set everything up and run the main job: animate a real speech clip with the
# golden vocaset fixture from the shared folder, writing out/quickstart.npz.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/setup_env.sh
shared="${CODETALKER_SHARED:-$root/../shared}"
golden="$shared/golden/vocaset_s11"
mkdir -p out
.venv/bin/codetalker animate \
    --config "$golden/config.yaml" --stage1 "$golden/stage1.pth.tar" --stage2 "$golden/stage2.pth.tar" \
    --audio "$shared/audio/voca_test_sentence.wav" --template "$golden/template.npy" \
    --style S1=0.7 --style S3=0.3 --out out/quickstart.npz "$@"
.venv/bin/codetalker info "$golden/stage2.pth.tar"
