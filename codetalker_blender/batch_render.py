"""Headless batch render of dialogue clips to sound-synced preview movies.

    blender -b -P <extension folder>/batch_render.py -- --jobs jobs.csv --out previews/ \\
        --config stage2.yaml --stage1 s1.pth.tar --stage2 s2.pth.tar --mesh FLAME_sample.ply

The same works with the ``bpy`` module: ``python batch_render.py --jobs ...``.
Jobs: a folder of audio files, a CSV or a JSON file (see core/batch.py); all
options: ``--help``. Finished movies are skipped unless --force. Exit status:
0 when every job was rendered or skipped, 1 when some failed, 2 for bad usage.
"""

import importlib
import os
import sys


def _package():
    """This extension's package, whatever its installed name (codetalker_blender, codetalker, ...)."""
    here = os.path.dirname(os.path.abspath(__file__))
    repo_dir, ext_id = os.path.split(here)
    extensions, repo = os.path.split(repo_dir)
    candidates = [
        os.environ.get("CODETALKER_SITE_PACKAGES", ""),  # passed by the panel
        # where the add-on's "Install Dependencies" puts them: extension_path_user(..., "site-packages")
        os.path.join(extensions, ".user", repo, ext_id, "site-packages"),
    ]
    for extra in candidates:
        if extra and os.path.isdir(extra) and extra not in sys.path:
            sys.path.append(extra)
    if repo_dir not in sys.path:
        sys.path.append(repo_dir)
    return importlib.import_module(ext_id)


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    batch = importlib.import_module(_package().__name__ + ".blender.batch")
    sys.exit(batch.main(argv))  # inside `blender -b -P` too: Blender exits with this status
