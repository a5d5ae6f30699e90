"""The song model of multitrack folders: a Song of Tracks (and the Scan that found it),
and a LoadedSong decoded at one rate and length. `folders` finds and loads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio.io import AudioInfo
from ..errors import StemwrightError
from ..stems import STEM_IDS


class MultitrackError(StemwrightError):
    """A folder holds no song Stemwright can read, or a song cannot be loaded at all."""


@dataclass
class Track:
    """One instrument file of a song and the stem it goes to."""

    path: Path
    key: str  # path relative to the song folder, "/"-separated: the key in the mapping file
    stem: str  # canonical stem id, or IGNORE / MIXTURE
    source: str  # "metadata", "name", "default" (nothing matched) or "override"
    instrument: str = ""  # what the metadata calls it, when it says
    info: AudioInfo | None = None
    problem: str | None = None  # why it cannot be used (unreadable, ...)
    stream: int | None = None  # its audio stream in the song's .stem.mp4 (None: own file)

    @property
    def name(self) -> str:
        return self.path.stem if self.stream is None else (self.instrument or self.key)

    @property
    def usable(self) -> bool:
        return self.problem is None and self.stem in STEM_IDS


@dataclass
class Song:
    """A song found in a folder: its tracks, mapping and mixture file (if any)."""

    name: str
    folder: Path
    key: str  # folder (or .stem.mp4 file) relative to the scanned root ("." the root)
    layout: str  # "musdb", "slakh", "medleydb", "tracks" or "nistems"
    tracks: list[Track]
    mixture: Path | None = None
    mixture_info: AudioInfo | None = None
    problems: list[str] = field(default_factory=list)
    container: Path | None = None  # the .stem.mp4 holding every track ("nistems" songs)
    mixture_stream: int | None = None  # the mixture's audio stream in `container`
    stream_keys: dict[int, str] = field(default_factory=dict)  # container: stream -> key

    @property
    def duration(self) -> float:
        """Longest track in seconds (from the file headers)."""
        lengths = [t.info.duration for t in self.tracks if t.info is not None]
        if self.mixture_info is not None:
            lengths.append(self.mixture_info.duration)
        return max(lengths, default=0.0)

    def stems_present(self) -> tuple[str, ...]:
        """Canonical stems at least one usable track maps to, in canonical order."""
        hit = {t.stem for t in self.tracks if t.usable}
        return tuple(s for s in STEM_IDS if s in hit)

    def mapping(self) -> dict[str, str]:
        """{track key: stem} as the mapping file holds it."""
        return {t.key: t.stem for t in self.tracks}


@dataclass
class Scan:
    """Result of `scan_folder`: the songs, and what was found but left out."""

    root: Path
    songs: list[Song]
    problems: list[str] = field(default_factory=list)
    mapping_file: Path | None = None  # the override file that was applied, if any


@dataclass
class LoadedSong:
    """A song decoded at one rate, length and channel count."""

    song: Song
    samplerate: int
    tracks: list[tuple[Track, np.ndarray]]  # float32 [C, T] each, all the same shape
    mixture: np.ndarray | None
    warnings: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.tracks[0][1].shape[-1]

    def by_stem(self) -> dict[str, list[np.ndarray]]:
        """{stem id: [track arrays]} for the stems present, canonical order."""
        out: dict[str, list[np.ndarray]] = {}
        for track, audio in self.tracks:
            out.setdefault(track.stem, []).append(audio)
        return {s: out[s] for s in STEM_IDS if s in out}


__all__ = ["MultitrackError", "Track", "Song", "Scan", "LoadedSong"]
