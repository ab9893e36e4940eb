"""Domain errors raised by the core.

Every error a user can cause (a bad file, a wrong mesh, an unknown style) is a
:class:`CodeTalkerError` with a message meant to be shown as it is: the CLI
prints it on one line, the Blender operators pass it to ``self.report``.
"""


class CodeTalkerError(Exception):
    """Base class of every user-facing error of the core."""


class ConfigError(CodeTalkerError):
    """A model configuration is missing, malformed or inconsistent."""


class CheckpointError(CodeTalkerError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


class AudioError(CodeTalkerError):
    """An audio file cannot be read or holds no usable sound."""


class TemplateError(CodeTalkerError):
    """A template mesh cannot be read or has the wrong vertex count."""


class StyleError(CodeTalkerError):
    """A style specification names unknown subjects or has invalid weights."""


class Cancelled(CodeTalkerError):
    """The caller asked the running inference to stop."""
