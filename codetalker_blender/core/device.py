"""Choosing the torch device: CUDA, then Apple MPS, then CPU, unless told."""

from __future__ import annotations

import torch

from .errors import CodeTalkerError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> dict[str, bool]:
    mps = getattr(torch.backends, "mps", None)
    return {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": bool(mps is not None and mps.is_available()),
    }


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) picks CUDA, then MPS, then CPU; others must be available."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    avail = available_devices()
    if name == "auto":
        for kind in ("cuda", "mps"):
            if avail[kind]:
                return torch.device(kind)
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in avail:
        raise CodeTalkerError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if not avail[kind]:
        raise CodeTalkerError(f"device {name!r} is not available on this machine")
    return torch.device(name)
