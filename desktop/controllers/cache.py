"""The session cache: the stems of earlier separations, kept on disk (float32 `.npy`, about
21 MB per stem-minute at 44.1 kHz stereo, so 6 stems of a 3-minute song take ~380 MB) so
that reopening a song restores them at once (`engine.workers`: `SaveSessionTask`,
`find_session`).

Here: its size, a limit (`Settings.cache_limit_mb`; the oldest separations are removed
first when the cache is over it) and clearing it. The open song's separations are never
removed, nor a separation still being written (its `.part` folder, unless it is a day old:
a writer that was killed). Only real folders inside the cache are ever deleted (a link is
skipped, never followed).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.workers import session_key, sessions_dir

if TYPE_CHECKING:
    from ..main_window import MainWindow

MB = 1024 * 1024
STALE_PART_S = 24 * 3600  # a `.part` folder this old belongs to a killed writer


@dataclass(frozen=True)
class CachedSeparation:
    """One kept separation: `sessions/<song key>/<model>/`."""

    folder: Path
    size: int  # bytes
    modified: float  # seconds since the epoch (its newest file)
    writing: bool  # a `.part` folder: still being written (or left by a killed writer)

    @property
    def song_folder(self) -> Path:
        return self.folder.parent

    @property
    def is_drag_renders(self) -> bool:
        """The stems rendered for dragging out of the app (controllers/drag.py), not a
        separation. A DAW that does not copy dropped files (REAPER, Ableton Live by
        default) plays them from here, so the size limit never removes them; only Clear
        cache does, after saying so."""
        return self.folder.name == "drag"


def _folder_size(folder: Path) -> tuple[int, float]:
    """Bytes and newest modification time of the files under `folder` (links not
    followed)."""
    total, newest = 0, 0.0
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if name in files:
                total += st.st_size
            newest = max(newest, st.st_mtime)
    if newest == 0.0:
        try:
            newest = folder.lstat().st_mtime
        except OSError:
            pass
    return total, newest


def separations(root: Path | None = None) -> list[CachedSeparation]:
    """Every kept separation, oldest first."""
    root = sessions_dir() if root is None else root
    found = []
    try:
        songs = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    for song in songs:
        try:
            runs = [p for p in song.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            continue
        for run in runs:
            size, modified = _folder_size(run)
            found.append(CachedSeparation(run, size, modified, run.name.endswith(".part")))
    return sorted(found, key=lambda s: s.modified)


def cache_size(root: Path | None = None) -> int:
    """Bytes the session cache takes (every file under it, links not followed)."""
    root = sessions_dir() if root is None else root
    return _folder_size(root)[0] if root.is_dir() else 0


def format_size(size: int) -> str:
    """"0 MB", "364 MB", "2.1 GB"."""
    if size >= 1024 * MB:
        return f"{size / (1024 * MB):.1f} GB"
    return f"{size / MB:.0f} MB"


def _removable(sep: CachedSeparation, keep: set[Path], now: float,
               drags: bool = False) -> bool:
    if sep.song_folder.resolve() in keep or (sep.is_drag_renders and not drags):
        return False
    return not sep.writing or now - sep.modified > STALE_PART_S


def _remove(sep: CachedSeparation) -> bool:
    shutil.rmtree(sep.folder, ignore_errors=True)
    try:
        sep.song_folder.rmdir()  # the song's folder, once empty
    except OSError:
        pass
    return not sep.folder.exists()


def enforce_limit(limit_bytes: int, keep: set[Path] | None = None,
                  root: Path | None = None, drags: bool = False) -> list[Path]:
    """Remove the oldest separations until the cache holds at most `limit_bytes` (the
    song folders in `keep` stay whatever their size, and dragged stems unless `drags`);
    returns the removed folders."""
    keep = {p.resolve() for p in keep or set()}
    found = separations(root)
    total = sum(s.size for s in found)
    removed, now = [], time.time()
    for sep in found:  # oldest first
        if total <= limit_bytes:
            break
        if _removable(sep, keep, now, drags) and _remove(sep):
            removed.append(sep.folder)
            total -= sep.size
    return removed


def clear(keep: set[Path] | None = None, root: Path | None = None) -> list[Path]:
    """Remove every separation and dragged stem but those of the song folders in `keep`."""
    return enforce_limit(0, keep, root, drags=True)


def dragged_size(root: Path | None = None) -> int:
    """Bytes of stems rendered for dragging (kept outside the size limit)."""
    return sum(s.size for s in separations(root) if s.is_drag_renders)


def open_song_folders(window: MainWindow) -> set[Path]:
    """The cache folders of the song open in `window` (never removed)."""
    keep: set[Path] = set()
    session = getattr(window.separation, "session", None)
    if session and session.get("folder"):
        keep.add(Path(session["folder"]).parent.resolve())
    song = window.song
    if song is not None:
        try:
            keep.add((sessions_dir() / session_key(song.path)).resolve())
        except OSError:  # the song's file is gone: nothing of it to find either
            pass
    return keep


def apply_limit(window: MainWindow) -> list[Path]:
    """Bring the cache under the user's limit, keeping the open song's stems."""
    limit = window.settings.cache_limit_mb() * MB
    return enforce_limit(limit, open_song_folders(window))


__all__ = ["CachedSeparation", "apply_limit", "cache_size", "clear", "enforce_limit",
           "format_size", "open_song_folders", "separations"]
