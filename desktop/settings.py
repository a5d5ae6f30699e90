"""Persistent user settings (QSettings, INI format): recent files, last folder, model
choices, view options and the window layout.

Tests pass an explicit INI path so the real user's settings are never touched.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

ORGANIZATION = "Stemwright"
APPLICATION = "Stemwright"
MAX_RECENT = 10
APP_FOLDER = "Stemwright"  # the user-visible folder under Music / Documents
MIXER_SIZES = ("auto", "full", "compact")
DEFAULT_CACHE_LIMIT_MB = 2048
CACHE_LIMIT_MIN_MB, CACHE_LIMIT_MAX_MB = 100, 1_000_000


def _standard(location: QStandardPaths.StandardLocation, fallback: str) -> Path:
    found = QStandardPaths.writableLocation(location)
    return Path(found) if found else Path.home() / fallback


def default_export_folder() -> Path:
    """Where exports go unless the user chose elsewhere: a "Stemwright" folder in the
    user's Music folder (Documents when there is no Music folder), never the bare home."""
    music = _standard(QStandardPaths.StandardLocation.MusicLocation, "Music")
    documents = _standard(QStandardPaths.StandardLocation.DocumentsLocation, "Documents")
    base = music if music.is_dir() or not documents.is_dir() else documents
    if base == Path.home():
        base = base / "Music"
    return base / APP_FOLDER


def default_runs_folder() -> Path:
    """Where fine-tuning runs are kept unless the user chose elsewhere: a visible
    "Stemwright/runs" folder in the user's Documents (not a hidden cache)."""
    documents = _standard(QStandardPaths.StandardLocation.DocumentsLocation, "Documents")
    if documents == Path.home():
        documents = documents / "Documents"
    return documents / APP_FOLDER / "runs"


class Settings:
    """Typed accessors over one QSettings store."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        if path is not None:
            self.qsettings = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.qsettings = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                                       ORGANIZATION, APPLICATION)

    # -- generic ----------------------------------------------------------------------
    def value(self, key: str, default: object = None, type_: type | None = None) -> object:
        """Raw value with a default; `type_` converts (bool/int/float/str) defensively."""
        raw = self.qsettings.value(key, default)
        if raw is None or type_ is None:
            return raw
        try:
            if type_ is bool:
                if isinstance(raw, str):
                    return raw.strip().lower() in ("1", "true", "yes", "on")
                return bool(raw)
            return type_(raw)
        except (TypeError, ValueError):
            return default

    def set_value(self, key: str, value: object) -> None:
        self.qsettings.setValue(key, value)

    def sync(self) -> None:
        self.qsettings.sync()

    # -- files ------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        """Recently opened files, newest first (only those that still exist)."""
        raw = self.qsettings.value("files/recent", [])
        if isinstance(raw, str):
            raw = [raw] if raw else []
        return [str(p) for p in (raw or []) if p and Path(str(p)).exists()]

    def add_recent_file(self, path: str | os.PathLike) -> None:
        """Put `path` at the top of the recent list and remember its folder."""
        path = str(Path(path).resolve())
        items = [p for p in self.recent_files() if p != path]
        self.qsettings.setValue("files/recent", [path] + items[:MAX_RECENT - 1])
        self.set_last_folder(str(Path(path).parent))

    def clear_recent_files(self) -> None:
        self.qsettings.setValue("files/recent", [])

    def last_folder(self) -> str:
        """Folder of the last opened file (home when unknown or gone)."""
        folder = str(self.qsettings.value("files/last_folder", "") or "")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def set_last_folder(self, folder: str) -> None:
        self.qsettings.setValue("files/last_folder", folder)

    # -- separation -------------------------------------------------------------------
    def model(self, default: str) -> str:
        return str(self.value("separation/model", default) or default)

    def set_model(self, name: str) -> None:
        self.set_value("separation/model", name)

    def device(self) -> str:
        return str(self.value("separation/device", "auto") or "auto")

    def set_device(self, device: str) -> None:
        self.set_value("separation/device", device)

    def segment(self) -> float:
        """Segment length in seconds; 0 means the model's default."""
        return float(self.value("separation/segment", 0.0, float))

    def set_segment(self, seconds: float) -> None:
        self.set_value("separation/segment", float(seconds))

    def overlap(self) -> float:
        """Chunk overlap (0..0.95); negative means the model's default."""
        return float(self.value("separation/overlap", -1.0, float))

    def set_overlap(self, overlap: float) -> None:
        self.set_value("separation/overlap", float(overlap))

    # -- fine-tuning ------------------------------------------------------------------
    def runs_folder(self) -> Path:
        """The folder fine-tuning runs are written to and resumed from."""
        folder = str(self.value("train/runs_folder", "") or "")
        return Path(folder) if folder else default_runs_folder()

    def set_runs_folder(self, folder: str | os.PathLike) -> None:
        self.set_value("train/runs_folder", str(folder))

    # -- view -------------------------------------------------------------------------
    def log_frequency(self) -> bool:
        return bool(self.value("view/log_frequency", True, bool))

    def set_log_frequency(self, on: bool) -> None:
        self.set_value("view/log_frequency", bool(on))

    def show_spectrogram(self) -> bool:
        return bool(self.value("view/spectrogram", True, bool))

    def set_show_spectrogram(self, on: bool) -> None:
        self.set_value("view/spectrogram", bool(on))

    def lane_spectrograms(self) -> bool:
        """Whether the lanes draw spectrograms instead of waveforms (off by default)."""
        return bool(self.value("view/lane_spectrograms", False, bool))

    def set_lane_spectrograms(self, on: bool) -> None:
        self.set_value("view/lane_spectrograms", bool(on))

    def snap_to_beats(self) -> bool:
        """Loop edges snap to the song's beats (when its beat grid is known)."""
        return bool(self.value("view/snap_to_beats", True, bool))

    def set_snap_to_beats(self, on: bool) -> None:
        self.set_value("view/snap_to_beats", bool(on))

    def mixer_size(self) -> str:
        """The mixer's strips: "auto" (compact in a short window), "full" or "compact"."""
        size = str(self.value("view/mixer_size", "auto") or "auto")
        return size if size in MIXER_SIZES else "auto"

    def set_mixer_size(self, size: str) -> None:
        if size not in MIXER_SIZES:
            raise ValueError(f"mixer size must be one of {', '.join(MIXER_SIZES)}")
        self.set_value("view/mixer_size", size)

    # -- the session cache (separated stems kept on disk) ------------------------------
    def cache_limit_mb(self) -> int:
        """The most the session cache may hold, in MB (oldest songs go first)."""
        mb = int(self.value("cache/limit_mb", DEFAULT_CACHE_LIMIT_MB, int))
        return min(max(mb, CACHE_LIMIT_MIN_MB), CACHE_LIMIT_MAX_MB)

    def set_cache_limit_mb(self, mb: int) -> None:
        self.set_value("cache/limit_mb", int(min(max(mb, CACHE_LIMIT_MIN_MB),
                                                 CACHE_LIMIT_MAX_MB)))

    # -- window layout ----------------------------------------------------------------
    def window_geometry(self) -> QByteArray | None:
        raw = self.qsettings.value("window/geometry")
        return raw if isinstance(raw, QByteArray) and not raw.isEmpty() else None

    def window_state(self) -> QByteArray | None:
        raw = self.qsettings.value("window/state")
        return raw if isinstance(raw, QByteArray) and not raw.isEmpty() else None

    def splitter_state(self) -> QByteArray | None:
        raw = self.qsettings.value("window/splitter")
        return raw if isinstance(raw, QByteArray) and not raw.isEmpty() else None

    def save_window(self, geometry: QByteArray, state: QByteArray,
                    splitter: QByteArray | None = None) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)
        if splitter is not None:
            self.qsettings.setValue("window/splitter", splitter)
        self.qsettings.sync()
