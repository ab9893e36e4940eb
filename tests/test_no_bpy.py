"""The core and the command line must work without Blender."""

import subprocess
import sys

from conftest import REPO


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_imports_no_bpy():
    mods = _modules_after_import("codetalker_blender.core")
    assert "codetalker_blender.core" in mods
    assert not {m for m in mods if m == "bpy" or m.startswith(("bpy.", "bpy_", "mathutils"))}


def test_cli_imports_no_bpy():
    mods = _modules_after_import("codetalker_blender.cli")
    assert "bpy" not in mods


def test_core_source_never_mentions_bpy_imports():
    core = REPO / "codetalker_blender" / "core"
    for path in core.rglob("*.py"):
        text = path.read_text()
        assert "import bpy" not in text and "from bpy" not in text, path
