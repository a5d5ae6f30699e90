"""Dragging a lane out of the window into a DAW or a file manager.

A drag carries one local file URL: the stem (or the mixture) written at the song's sample
rate, named like an export ("<song> - <Stem>.wav"), as WAV or FLAC at the format and bit
depth last chosen in the Export dialog (`drag_format`); after a lossy choice (MP3, M4A,
Opus) a 24-bit WAV, since a lossy file makes a poor DAW import (encoder delay shifts it off
the grid, and every later edit re-encodes it) and takes long to encode mid-drag. The file is
written when the drag starts (a few hundred ms for a 4-minute stem) into the song's
folder of the session cache (`sessions/<song key>/drag/<render key>/`, so the cache's
size and limit count it and the open song's renders are kept), and reused while it is
current: the render key hashes what was written (the stem's samples, the rate, the format
and bit depth and, "as heard", the gains), so new stems of the same song, or a new format,
never reuse an old file.

"As heard" (Alt held when the drag starts): the stem through its mixer channel (fader,
pan and master, stereo), as `render_mix` renders it; mute and solo are ignored (the user
asked for this stem). The mixture lane gives the song; "as heard", the remix of every stem.
A stem not separated yet (or still being separated) gives no drag.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QMimeData, QSettings, Qt, QUrl
from PySide6.QtWidgets import QApplication

from stemwright.models.audio.io import SAVE_FORMATS, save_audio
from stemwright.models.errors import OutputExistsError, StemwrightError
from stemwright.models.remix.export import remix_filename, stem_filename
from stemwright.models.remix.mixer import ChannelState, MixerState, channel_gains, render_mix
from stemwright.models.stems import STEM_IDS

from ..engine.workers import session_key, sessions_dir

if TYPE_CHECKING:
    from ..main_window import MainWindow

DRAG_FOLDER = "drag"
KEEP_RENDERS = 16  # render folders kept per song (the oldest go first)
MIX_KEY = "mix"

_digests: dict[int, tuple[weakref.ref, str]] = {}  # id(array) -> (the array, its hash)


def _digest(signal: np.ndarray) -> str:
    """A hash of an array's samples, remembered while the array lives (a second drag of
    the same stems costs nothing; stems are never changed in place once separated)."""
    known = _digests.get(id(signal))
    if known is not None and known[0]() is signal:
        return known[1]
    data = np.ascontiguousarray(signal)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{data.dtype.str}|{data.shape}|".encode())
    h.update(memoryview(data).cast("B"))
    digest = h.hexdigest()
    ident = id(signal)
    try:
        ref = weakref.ref(signal, lambda _r, k=ident: _digests.pop(k, None))
    except TypeError:  # not weak-referenceable: hashed again next time
        return digest
    _digests[id(signal)] = (ref, digest)
    return digest


def drag_folder(song_path: str | Path) -> Path:
    """Where the drags of the song at `song_path` are rendered (in its session folder)."""
    return sessions_dir() / session_key(song_path) / DRAG_FOLDER


def as_heard_state(state: MixerState, stem_id: str) -> MixerState:
    """`state` for `stem_id` alone: its fader and pan, the master; not muted or soloed."""
    ch = state.channels.get(stem_id) or ChannelState()
    return MixerState(channels={stem_id: ChannelState(ch.gain_db, ch.pan)},
                      master_db=state.master_db)


def drag_format(settings: QSettings | None) -> tuple[str, int]:
    """(format, bit depth) of a drag's file: the Export dialog's last choice when it is
    WAV or FLAC (settings "export/format" and "export/bit_depth"), else 24-bit WAV."""
    if settings is None:
        return "wav", 24
    fmt = str(settings.value("export/format", "wav") or "wav").lower()
    if fmt not in SAVE_FORMATS:  # a lossy format, or nothing valid
        return "wav", 24
    depth = str(settings.value("export/bit_depth", 24))
    bits = int(depth) if depth.isdigit() else 24
    return fmt, bits if bits in SAVE_FORMATS[fmt] else 24


def _prune(folder: Path, keep: int = KEEP_RENDERS) -> None:
    """Remove all but the `keep` newest render folders (real folders only, never links)."""
    try:
        runs = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return
    runs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _write(folder: Path, key: str, name: str, render, samplerate: int,
           title: str, format: str = "wav", bit_depth: int = 24) -> Path:
    """folder/key/name, rendered (`render()`) and written only when it is not there yet."""
    target = folder / key / name
    if target.is_file():
        try:
            os.utime(target.parent)  # recently used: pruned last
        except OSError:
            pass
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        save_audio(target, render(), samplerate, format=format, bit_depth=bit_depth,
                   tags={"title": title})
    except OutputExistsError:  # written meanwhile (the same render): use it
        pass
    except OSError as exc:
        raise StemwrightError(f"cannot write {target}: {exc.strerror or exc}; free some "
                              "disk space or clear the cache") from exc
    _prune(folder)
    return target


def render_drag_file(song_path: str | Path, song: str, key: str, samplerate: int,
                     mixture: np.ndarray | None = None,
                     stems: Mapping[str, np.ndarray] | None = None,
                     state: MixerState | None = None, *, format: str = "wav",
                     bit_depth: int = 24) -> Path:
    """The file a drag of lane `key` ("mix" or a stem id) offers, written if needed.

    `state` given: "as heard" (see the module). `format`/`bit_depth`: WAV or FLAC
    (`drag_format`). Raises StemwrightError (one line) when the lane has nothing to offer
    or the file cannot be written.
    """
    if format not in SAVE_FORMATS or bit_depth not in SAVE_FORMATS[format]:
        raise StemwrightError(f"a drag writes WAV or FLAC at "
                              f"{', '.join(map(str, SAVE_FORMATS.get(format, (24,))))} bits, "
                              f"not {format} {bit_depth}-bit; choose WAV or FLAC in Export")
    fmt = (format, bit_depth)  # part of every render key: a new format, a new file
    try:
        folder = drag_folder(song_path)
    except OSError as exc:
        raise StemwrightError(f"cannot read {song_path}: {exc.strerror or exc}; open the "
                              "song again") from exc
    rate = int(samplerate)
    if key == MIX_KEY:
        if state is not None and stems:
            gains = channel_gains(state, stems)
            parts = [f"{s}:{_digest(x)}:{gains[s]!r}" for s, x in sorted(stems.items())]
            return _write(folder, _key("remix", rate, *fmt, *parts),
                          remix_filename(song, format, "Remix"),
                          lambda: render_mix(stems, state), rate, f"{song} (remix)", *fmt)
        if mixture is None:
            raise StemwrightError("open a song first, then drag its mixture")
        return _write(folder, _key("mix", rate, *fmt, _digest(mixture)),
                      remix_filename(song, format, "Mixture"),
                      lambda: mixture, rate, song, *fmt)
    signal = (stems or {}).get(key)
    if signal is None or key not in STEM_IDS:
        raise StemwrightError(f"the stem '{key}' is not separated yet; separate the song "
                              "first")
    name = stem_filename(song, key, format)
    title = name[:-len(format) - 1]
    if state is None:
        return _write(folder, _key("stem", key, rate, *fmt, _digest(signal)), name,
                      lambda: signal, rate, title, *fmt)
    alone = as_heard_state(state, key)
    gains = channel_gains(alone, [key])[key]
    return _write(folder, _key("heard", key, rate, *fmt, _digest(signal), repr(gains)),
                  name, lambda: render_mix({key: signal}, alone), rate, title, *fmt)


def _key(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=10).hexdigest()


def file_mime(path: str | Path) -> QMimeData:
    """Mime data holding one local file URL (what DAWs and file managers accept)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(Path(path).resolve()))])
    return mime


class StemDragController:
    """Gives the waveform view what a dragged lane carries (`mime_for`)."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        window.waveform.set_lane_drag(self.mime_for)

    def drag_file(self, key: str, as_heard: bool = False) -> Path | None:
        """The file a drag of lane `key` offers (written now if needed), or None (with a
        status-bar message) when there is nothing to drag."""
        w = self.window
        song = w.song
        if song is None:
            return None
        separated = w.separated
        stems = separated.result.stems if separated is not None else None
        if key != MIX_KEY and (w.partial is not None or not stems or key not in stems):
            w.statusBar().showMessage("This stem is not separated yet: drag it out once "
                                      "the separation is done.", 5000)
            return None
        if key == MIX_KEY and w.partial is not None:
            stems = None  # the remix is not final yet: the song itself
        state = w.player.mixer if as_heard else None
        fmt, depth = drag_format(getattr(getattr(w, "settings", None), "qsettings", None))
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            return render_drag_file(song.path, song.name, key, song.samplerate, song.data,
                                    stems, state, format=fmt, bit_depth=depth)
        except StemwrightError as exc:
            w.statusBar().showMessage(f"Cannot drag this lane: {exc}", 8000)
            return None
        finally:
            QApplication.restoreOverrideCursor()

    def mime_for(self, key: str, as_heard: bool = False) -> QMimeData | None:
        """The mime data for a drag of lane `key`, or None: no drag."""
        path = self.drag_file(key, as_heard)
        return None if path is None else file_mime(path)


__all__ = ["StemDragController", "as_heard_state", "drag_folder", "drag_format", "file_mime",
           "render_drag_file"]
