"""What the zoo knows of one model (`ModelEntry`) and of one of its files (`RemoteFile`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..stems import StemMapping
from .download import checksum_from_filename


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable weight file; `target` names the source it holds (Open-Unmix) or
    the file's role (RoFormers: "checkpoint" / "config"). `sha256`, when recorded, is the
    file's checksum; otherwise the one its name carries (demucs, Open-Unmix), if any."""

    url: str
    target: str | None = None
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def checksum(self) -> str | None:
        return self.sha256 or checksum_from_filename(self.filename)


@dataclass(frozen=True)
class ModelEntry:
    """A registry entry: what the model separates, how big it is, where it comes from."""

    name: str
    title: str
    family: str  # "classic" | "embedded" | "demucs" | "openunmix" | "stemwright" |
    # "roformer" | "recipe" (zoo/recipes.py: stems composed from other models)
    mapping: StemMapping
    samplerate: int
    size_mb: float
    licence: str
    source: str
    description: str
    files: tuple[RemoteFile, ...] = ()
    bag_weights: tuple[tuple[float, ...], ...] | None = None
    #: per-stem SDR its authors report, ((stem id, dB), ...), on one benchmark
    #: (MVSep multisong); recipes weight ensembles by it ({"weighted": "sdr"})
    sdr: tuple[tuple[str, float], ...] = ()

    @property
    def needs_download(self) -> bool:
        """True when files must be in the cache first (a recipe: its models' files)."""
        return bool(self.files) or self.family == "recipe"

    @property
    def downloadable(self) -> bool:
        """True when every file can be fetched checksum-verified (the only way the zoo
        downloads); an entry with files but no known checksum is import-only."""
        return bool(self.files) and all(f.checksum for f in self.files)


__all__ = ["ModelEntry", "RemoteFile"]
