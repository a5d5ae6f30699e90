"""Bundled resources: the demo song with its true stems, icons, the embedded default model."""

from importlib.resources import files
from pathlib import Path


def resource_path(name: str) -> Path:
    """Filesystem path of a bundled resource file."""
    return Path(str(files(__name__).joinpath(name)))


def demo_song() -> Path:
    """The bundled demo song: a multitrack folder (tracks, metadata.yaml, mix.flac) made
    by `stemwright synth` (see demo/README.md); a missing path if it is not installed."""
    root = resource_path("demo")
    songs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return songs[0] if songs else root / "missing"
