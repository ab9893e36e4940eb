"""Python dependencies inside Blender.

Blender ships numpy but not torch, transformers or librosa. They are installed
on request with pip into the extension's user folder
(``bpy.utils.extension_path_user(__package__, path="site-packages")``), which is
put on ``sys.path`` at registration. Nothing is downloaded unless the user
asks and ``bpy.app.online_access`` allows it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field

REQUIRED = ("torch", "transformers", "librosa", "soundfile", "safetensors", "yaml")
PIP_PACKAGES = ("transformers", "librosa", "soundfile", "safetensors", "pyyaml")
# Where pip finds each torch build. CPU-only wheels come from PyTorch's own index.
TORCH_INDEXES = {
    "CPU": "https://download.pytorch.org/whl/cpu",
    "CUDA": "https://download.pytorch.org/whl/cu126",
}


def site_packages_dir(package: str, create: bool = False) -> str:
    import bpy

    return bpy.utils.extension_path_user(package, path="site-packages", create=create)


def add_to_path(package: str) -> None:
    try:
        path = site_packages_dir(package, create=False)
    except ValueError:  # not installed as an extension (e.g. imported from a checkout)
        return
    if os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # e.g. a module blocked with sys.modules[name] = None
        return False


def missing() -> list[str]:
    """Required modules that cannot be found (without importing them)."""
    return [name for name in REQUIRED if not _findable(name)]


_STATUS: dict | None = None


def status_known() -> bool:
    """True once :func:`status` has run, or torch is already imported (so it is cheap)."""
    return _STATUS is not None or "torch" in sys.modules


def status(refresh: bool = False) -> dict:
    """What is installed: torch version and accelerators. Imports torch once, lazily."""
    global _STATUS
    if _STATUS is not None and not refresh:
        return _STATUS
    info = {"missing": missing(), "torch": None, "cuda": False, "cuda_device": "", "mps": False}
    if "torch" not in info["missing"]:
        try:
            import torch

            info["torch"] = torch.__version__
            info["cuda"] = bool(torch.cuda.is_available())
            if info["cuda"]:
                info["cuda_device"] = torch.cuda.get_device_name(0)
            mps = getattr(torch.backends, "mps", None)
            info["mps"] = bool(mps is not None and mps.is_available())
        except Exception as exc:  # a broken install must not break the panel
            info["torch_error"] = f"{type(exc).__name__}: {exc}"
    _STATUS = info
    return info


def pip_commands(target: str, variant: str) -> list[list[str]]:
    """The pip calls that install everything into ``target``."""
    base = [sys.executable, "-m", "pip", "install", "--upgrade", "--target", target, "--no-input",
            "--disable-pip-version-check"]
    torch_cmd = base + ["torch"]
    if variant in TORCH_INDEXES:
        torch_cmd += ["--index-url", TORCH_INDEXES[variant]]
    return [torch_cmd, base + list(PIP_PACKAGES)]


@dataclass
class Installer:
    """pip in a background thread; the UI reads ``log``, ``done`` and ``error``."""

    commands: list[list[str]]
    log: list[str] = field(default_factory=list)
    done: bool = False
    error: str = ""

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for cmd in self.commands:
                self.log.append("$ " + " ".join(cmd[2:]))
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for line in proc.stdout:
                    self.log.append(line.rstrip())
                if proc.wait() != 0:
                    self.error = f"pip failed (exit {proc.returncode}); see the log below"
                    return
        except OSError as exc:
            self.error = f"could not run pip: {exc}"
        finally:
            self.done = True
