#!/usr/bin/env bash
# Create .venv in the repository root (once) and install the project with its dev extra.
# torch is pinned first so that pip takes the local CPU build instead of a CUDA download.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.codetalker-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import torch, transformers, librosa, soundfile, safetensors, yaml, pytest, bpy" \
        || { echo "setup_env: dependencies failed to install" >&2; exit 1; }
    touch "$stamp"
fi

# A second environment with Blender 4.2 LTS (the oldest version we support) for a
# smoke test. It has only bpy; the main environment's packages come after its
# own on sys.path through a .pth file, so its bpy (and numpy) take precedence.
stamp42=.venv-bpy42/.codetalker-installed
if [ ! -f "$stamp42" ]; then
    rm -rf .venv-bpy42
    "$PY" -m venv .venv-bpy42
    .venv-bpy42/bin/python -m pip install -q "bpy==4.2.0" 2>&1 | grep -v "^WARNING: Location" || true
    site42=$(.venv-bpy42/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    echo "$site" > "$site42/zz_codetalker_main_env.pth"
    .venv-bpy42/bin/python -c "import bpy; assert bpy.app.version[:2] == (4, 2)" \
        || { echo "setup_env: bpy 4.2 failed to install" >&2; exit 1; }
    touch "$stamp42"
fi
