"""The bpy-free core of CodeTalker for Blender.

Config, model, checkpoint I/O, audio, inference and style math. Nothing in
this package imports ``bpy``; a test keeps it so.

Importing the package is cheap: torch and the other heavy dependencies load
only when a model function is first used, so that the Blender add-on can
register (and explain what to install) where they are missing.
"""

from .config import ModelConfig, PredictorConfig, TimingConfig, VQConfig, load_config, published_config
from .errors import (
    AudioError,
    Cancelled,
    CheckpointError,
    CodeTalkerError,
    ConfigError,
    StyleError,
    TemplateError,
)

_LAZY = {"Animation", "animate", "load_model"}


def __getattr__(name):
    if name in _LAZY:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Animation",
    "AudioError",
    "Cancelled",
    "CheckpointError",
    "CodeTalkerError",
    "ConfigError",
    "ModelConfig",
    "PredictorConfig",
    "StyleError",
    "TemplateError",
    "TimingConfig",
    "VQConfig",
    "animate",
    "load_config",
    "load_model",
    "published_config",
]
