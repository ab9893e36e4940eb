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
    extra = os.environ.get("CODETALKER_SITE_PACKAGES")  # the add-on's pip folder, passed by the panel
    if extra and os.path.isdir(extra) and extra not in sys.path:
        sys.path.append(extra)
    sys.path.insert(0, os.path.dirname(here))
    return importlib.import_module(os.path.basename(here))


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    batch = importlib.import_module(_package().__name__ + ".blender.batch")
    sys.exit(batch.main(argv))  # inside `blender -b -P` too: Blender exits with this status
