#!/usr/bin/env bash
# Set everything up and run the main job: animate a real speech clip on the FLAME
# template with the bundled model, writing out/quickstart.npz (frames, fps, metadata).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/setup_env.sh
shared="${CODETALKER_SHARED:-$root/../shared}"
mkdir -p out
.venv/bin/codetalker animate \
    --audio "$shared/audio/arctic_a0009.wav" --template "$shared/assets/flame/FLAME_sample.ply" \
    --out out/quickstart.npz "$@"
.venv/bin/codetalker info models/codetalker_flame_synth.safetensors
