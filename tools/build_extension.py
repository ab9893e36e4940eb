"""Build the installable Blender extension zip.

    python tools/build_extension.py [--out dist/]

The zip holds the ``codetalker_blender`` package at its root with the manifest
(``addon_manifest.toml``) shipped as ``blender_manifest.toml``, plus any
bundled model from ``models/``. Tests, tools and development files stay out.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "codetalker_blender")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
MODEL_SUFFIXES = (".safetensors", ".json", ".md")


def manifest_field(text: str, name: str) -> str:
    m = re.search(rf'^{name}\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise SystemExit(f"addon_manifest.toml lacks {name}")
    return m.group(1)


def build(out_dir: str) -> str:
    with open(os.path.join(ROOT, "addon_manifest.toml"), encoding="utf-8") as fh:
        manifest = fh.read()
    ext_id, version = manifest_field(manifest, "id"), manifest_field(manifest, "version")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{ext_id}-{version}.zip")
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("blender_manifest.toml", manifest)
        for folder, dirs, files in os.walk(PACKAGE):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                full = os.path.join(folder, name)
                zf.write(full, os.path.relpath(full, PACKAGE))
        models = os.path.join(ROOT, "models")
        for name in sorted(os.listdir(models)) if os.path.isdir(models) else []:
            if name.endswith(MODEL_SUFFIXES) and name != "README.md":
                zf.write(os.path.join(models, name), f"models/{name}")
        zf.write(os.path.join(ROOT, "LICENSE"), "LICENSE")
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "dist"))
    args = p.parse_args(argv)
    path = build(args.out)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
