"""Blender 4.2 LTS smoke test (legacy actions, ``sequences``), in its own environment.

tools/setup_env.sh makes .venv-bpy42 with the bpy 4.2.0 module; the smoke
script registers the add-on, bakes in both modes and checks the evaluated mesh.
"""

import os
import subprocess

from conftest import REPO, SHARED

PYTHON_42 = REPO / ".venv-bpy42" / "bin" / "python"


def test_blender_4_2_smoke(tmp_path):
    assert PYTHON_42.is_file(), "the Blender 4.2 environment is missing: run bash tools/setup_env.sh"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(PYTHON_42), str(REPO / "tests" / "blender_smoke.py"), str(SHARED)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert "SMOKE-OK 4.2" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
