"""Typed errors that the CLI turns into one clear line and exit code 2.

Every user-facing failure (bad file, wrong engine, missing optional dependency) raises a
subclass of :class:`HmrtError` whose message names the file and the fix.
"""

from __future__ import annotations


class HmrtError(Exception):
    """Base class of errors caused by input or environment, not by a bug in hmrt."""

    exit_code = 2


class InputError(HmrtError):
    """A file, argument or frame that hmrt cannot use (missing, corrupt, wrong type)."""


class SourceError(InputError):
    """A video, image folder, image or camera that cannot be opened or read to its end."""


class OutputError(HmrtError):
    """An output file or folder that cannot be written (no permission, read-only or full
    disk, a file where a folder is expected); the message names the path the user gave."""


class FrameError(InputError):
    """A frame passed to the runtime that is not a BGR ``uint8 (H, W, 3)`` array."""


class ModelLoadError(InputError):
    """A model file (.onnx / .engine) that is missing, corrupt or not an hmrt export."""


class MissingDependencyError(HmrtError):
    """An optional package is needed for this feature and is not installed."""

    def __init__(self, package: str, feature: str, install: str | None = None):
        hint = install or f"pip install {package}"
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed; run: {hint}"
        )
        self.package = package


class EngineMismatchError(HmrtError):
    """A TensorRT engine built for another GPU, TensorRT version or ONNX file."""


class BackendUnavailableError(HmrtError):
    """An explicitly requested backend cannot run on this machine."""


def require(module: str, feature: str, install: str | None = None):
    """Import and return ``module``, or raise :class:`MissingDependencyError` naming the fix."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], feature, install) from exc
