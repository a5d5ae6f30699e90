"""Bundled resources: demo audio, icons, the embedded default model."""

from importlib.resources import files
from pathlib import Path


def resource_path(name: str) -> Path:
    """Filesystem path of a bundled resource file."""
    return Path(str(files(__name__).joinpath(name)))
