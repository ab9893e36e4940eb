"""The bpy-free core of CodeTalker for Blender.

Config, model, checkpoint I/O, audio, inference and style math. Nothing in
this package imports ``bpy``; a test keeps it so.
"""

from .api import Animation, animate, load_model
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
