"""Open a multitrack song: pick a song folder (or a folder of songs, then one of them; a
`.stem.mp4` file is a song too and can be given in place of a folder), check
and edit how its tracks map onto the six stems, and load it with its reference stems.

Scanning reads file headers only and runs on a worker thread (`CallTask`); loading decodes
the tracks and mixes them into six stems and a mixture with the engine's adaptive mixdown
(models/mixdown.py) on another (`MultitrackLoadTask`). The mapping table edits the scan in
memory (`multitrack.apply_overrides`); "Save mapping" writes the folder's
stemwright-mapping.yaml through `multitrack.write_mapping`, so the command line, the
evaluation and training read the same mapping.

The dialogs' shared pieces live here too: `CallTask` / `start_task` (a call on a worker
thread) and `RowToggles` (a list row ticks when clicked anywhere on it). Tick boxes that
show on the dark theme are app-wide now (`theme.VisibleChecks`, set by `app.apply_theme`);
the name is still importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.multitrack.folders import (
    IGNORE,
    MAPPING_FILE,
    MIXTURE,
    Scan,
    Song,
    Track,
    mixture_key,
)
from stemwright.models.stems import STEM_IDS, get_stem

from ..engine.workers import LoadedSong, Task
from ..theme import VisibleChecks  # app-wide now; still imported from here by dialogs
from ..views.waveform_data import Envelope, format_time

PROCEDURE = "adaptive"  # the six-class mixdown the references come from
TARGETS: tuple[tuple[str, str], ...] = (
    *((get_stem(s).name, s) for s in STEM_IDS),
    ("Ignore (leave out)", IGNORE),
    ("Mixture (the song's mix)", MIXTURE),
)
SOURCES = {"metadata": "metadata", "name": "file name", "default": "nothing matched",
           "override": "mapping file", "edited": "edited here"}
LAYOUTS = {"musdb": "MUSDB18", "slakh": "Slakh2100", "medleydb": "metadata",
           "tracks": "file names"}


class RowToggles(QObject):
    """Clicking anywhere on a checkable list row ticks or unticks it (not only on its
    small box): the state at the press is remembered, and a click that the box itself
    did not toggle toggles the row."""

    def __init__(self, view: QListWidget) -> None:
        super().__init__(view)
        self.view = view
        self._pressed: tuple[QListWidgetItem, Qt.CheckState] | None = None
        view.itemPressed.connect(self._press)
        view.itemClicked.connect(self._click)

    def _press(self, item: QListWidgetItem) -> None:
        self._pressed = (item, item.checkState())

    def _click(self, item: QListWidgetItem) -> None:
        pressed, self._pressed = self._pressed, None
        if pressed is None or pressed[0] is not item or \
                not item.flags() & Qt.ItemFlag.ItemIsEnabled:
            return
        if item.checkState() == pressed[1]:  # the box did not take the click
            item.setCheckState(Qt.CheckState.Unchecked if pressed[1] == Qt.CheckState.Checked
                               else Qt.CheckState.Checked)


_ALIVE: set[Task] = set()


def start_task(task: Task) -> Task:
    """Start a dialog's task: it keeps itself alive until it finishes and is then
    deleted. Dialog tasks have no Qt parent, since a dialog can be deleted first (a
    parent deleting a finished task it had already scheduled for deletion crashes)."""
    _ALIVE.add(task)
    task.finished.connect(lambda t=task: (_ALIVE.discard(t), t.deleteLater()))
    task.start()
    return task


class CallTask(Task):
    """Run `fn(*args)` on a worker thread; its return value is the result."""

    def __init__(self, fn: Callable[..., Any], *args: Any, title: str = "Working",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fn, self.args, self.title = fn, args, title

    def work(self) -> Any:
        return self.fn(*self.args)


@dataclass
class MultitrackSong(LoadedSong):
    """A multitrack song as the window shows it: the mixture of its six-class mixdown plus
    the reference stems it was mixed from (`mixdown.stems`) and their envelopes."""

    mixdown: Any = None  # models.mixdown.Mixdown
    source: Song | None = None
    references: dict[str, Envelope] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        return list(getattr(self.mixdown, "notes", []) or [])


class MultitrackLoadTask(Task):
    """Decode a song's tracks, mix them into six stems and a mixture, draw envelopes."""

    title = "Loading"

    def __init__(self, song: Song, parent: QObject | None = None,
                 procedure: str = PROCEDURE) -> None:
        super().__init__(parent)
        self.song = song
        self.path = song.folder  # what the window names in messages
        self.procedure = procedure

    def work(self) -> MultitrackSong:
        from stemwright.models.multitrack.folders import load_song
        from stemwright.models.multitrack.mixdown import mixdown_song

        tracks = sum(1 for t in self.song.tracks if t.usable)
        self.report(0.0, None, f"Reading {tracks} tracks of {self.song.name}")
        loaded = load_song(self.song, cancel=self.is_cancelled)
        self.report(0.6, None, "Mixing the stems")
        self.check_cancel()
        mix = mixdown_song(loaded, self.procedure)
        self.report(0.75, None, "Drawing")
        envelope = Envelope.compute(mix.mixture, mix.samplerate, cancel=self.is_cancelled)
        refs = {s: Envelope.compute(x, mix.samplerate, cancel=self.is_cancelled)
                for s, x in mix.stems.items()}
        self.report(1.0)
        return MultitrackSong(Path(self.song.folder), mix.mixture, mix.samplerate, envelope,
                              {"title": self.song.name}, None, mixdown=mix,
                              source=self.song, references=refs)


def scan(folder: str | os.PathLike[str]) -> Scan:
    """`multitrack.scan_folder` (for a worker thread)."""
    from stemwright.models.multitrack.folders import scan_folder

    return scan_folder(folder)


def save_mapping(scan_: Scan) -> Path:
    """Write the scan's mapping where it was read from (default: the folder's YAML file)."""
    from stemwright.models.multitrack.folders import write_mapping

    return write_mapping(scan_, scan_.mapping_file or scan_.root / MAPPING_FILE)


def describe_song(song: Song) -> str:
    """"3:12 · vocals, drums, bass · MUSDB18 layout"."""
    stems = ", ".join(get_stem(s).name.lower() for s in song.stems_present()) or "no stems"
    layout = {"musdb": "MUSDB18", "slakh": "Slakh", "medleydb": "MedleyDB",
              "tracks": "instrument tracks", "nistems": "NI Stems (.stem.mp4)"}.get(
                  song.layout, song.layout)
    return f"{format_time(song.duration)} \u00b7 {stems} \u00b7 {layout} layout"


class MappingDialog(QDialog):
    """Choose a song of a multitrack folder and check or edit its track mapping.

    The folder is scanned on a worker thread when the dialog opens. `songChosen(Song)` is
    emitted by Open (the window then loads it); `mappingSaved(Path)` after a save.
    """

    songChosen = Signal(object)  # noqa: N815 - Qt signal naming
    mappingSaved = Signal(object)  # noqa: N815
    scanned = Signal()  # the scan finished (or failed): for tests

    def __init__(self, folder: str | os.PathLike[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder = Path(folder)
        self.scan: Scan | None = None
        self.edited = False
        self.task: Task | None = None
        self._filling = False
        self.setWindowTitle(f"Open multitrack song \u2014 {self.folder.name}")
        self.resize(860, 520)
        self._build()
        self._start(CallTask(scan, self.folder, title="Scanning"),
                    self._scanned, self._scan_failed)
        self.info.setText(f"Looking for songs in {self.folder}\u2026")

    # -- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        self.songs = QListWidget()
        self.songs.setMinimumWidth(220)
        self.songs.currentRowChanged.connect(self._song_changed)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Track", "Stem", "Found by", "Format"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the stem boxes take the focus
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        right = QWidget()
        lay = QVBoxLayout(right)
        lay.setContentsMargins(0, 0, 0, 0)
        intro = QLabel("Each track of the song goes to one of the six stems; the stems are "
                       "mixed into the song you separate, and are the references its "
                       "separated stems are scored against. Change a stem below if the guess "
                       "is wrong.")
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #8b93a1")
        lay.addWidget(intro)
        self.song_title = QLabel("")
        self.song_title.setStyleSheet("font-weight: 600")
        self.song_title.setWordWrap(True)
        lay.addWidget(self.song_title)
        lay.addWidget(self.table, 1)
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(self.songs)
        self.split.addWidget(right)
        self.split.setSizes([240, 620])
        self.split.setChildrenCollapsible(False)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #f3c969")
        self.problems.setVisible(False)
        buttons = QDialogButtonBox()
        self.save_button = QPushButton("Save mapping")
        self.save_button.setToolTip(f"Write the mapping to {MAPPING_FILE} in the folder; "
                                    "Stemwright uses it every time it reads these songs")
        self.save_button.clicked.connect(self.save_mapping)
        self.open_button = QPushButton("Open song")
        self.open_button.setDefault(True)
        self.open_button.clicked.connect(self.open_song)
        buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.open_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.split, 1)
        layout.addWidget(self.info)
        layout.addWidget(self.problems)
        row = QHBoxLayout()
        row.addWidget(buttons)
        layout.addLayout(row)
        self._update_buttons()

    # -- scanning ---------------------------------------------------------------------
    def _start(self, task: Task, done: Callable[[Any], None],
               failed: Callable[[BaseException], None]) -> None:
        """Run `task`; `done(result)` or `failed(exc)` once it has ended (the dialog is
        free for the next task by then)."""
        self.task = task

        def ended(handler: Callable[[Any], None], value: Any, t: Task = task) -> None:
            if self.task is t:
                self.task = None
            handler(value)
            self._update_buttons()

        task.succeeded.connect(lambda value: ended(done, value))
        task.failed.connect(lambda exc: ended(failed, exc))
        task.cancelled.connect(lambda: ended(lambda _v: None, None))
        start_task(task)
        self._update_buttons()

    def _scanned(self, result: Scan) -> None:
        self.scan = result
        self.songs.clear()
        for song in result.songs:
            item = QListWidgetItem(self._song_text(song))
            item.setToolTip(describe_song(song))
            self.songs.addItem(item)
        several = len(result.songs) > 1
        self.songs.setVisible(several)
        if not several:  # the table takes the whole width
            self.split.setSizes([0, max(1, self.split.width())])
        self.songs.setCurrentRow(0)
        self.scanned.emit()

    @staticmethod
    def _song_text(song: Song) -> str:
        name = song.key if song.key != "." else song.name
        n = len(song.stems_present())
        return f"{name}\n   {format_time(song.duration)} \u00b7 {n} stem{'s' if n != 1 else ''}"

    def _scan_failed(self, exc: BaseException) -> None:
        self.info.setText(f"No multitrack song here: {exc}")
        self.info.setStyleSheet("color: #f08a7e")
        self.songs.setVisible(False)
        self.scanned.emit()

    # -- the mapping table --------------------------------------------------------------
    def current_song(self) -> Song | None:
        row = self.songs.currentRow()
        if self.scan is None or not 0 <= row < len(self.scan.songs):
            return None
        return self.scan.songs[row]

    def _song_changed(self, _row: int) -> None:
        self._fill_table()

    def _fill_table(self) -> None:
        song = self.current_song()
        self._filling = True
        self.table.setRowCount(0)
        if song is None:
            self._filling = False
            self._update_buttons()
            return
        rows: list[tuple[str, str, str, str, str | None]] = []
        if song.mixture is not None:
            info = song.mixture_info
            rows.append((mixture_key(song) or song.mixture.name, MIXTURE,
                         mixture_found_by(song), _format(info), None))
        for t in song.tracks:
            rows.append((t.key, t.stem, found_by(t, song.layout), _format(t.info),
                         t.problem))
        self.table.setRowCount(len(rows))
        for i, (key, stem, (source, why), fmt, problem) in enumerate(rows):
            item = QTableWidgetItem(key)
            item.setToolTip(problem or key)
            if problem:
                item.setForeground(QColor("#f08a7e"))
            self.table.setItem(i, 0, item)
            combo = QComboBox()
            for label, target in TARGETS:
                combo.addItem(label, target)
            combo.setCurrentIndex(max(0, combo.findData(stem)))
            combo.currentIndexChanged.connect(
                lambda _i, k=key, c=combo: self._target_changed(k, c.currentData()))
            self.table.setCellWidget(i, 1, combo)
            found = QTableWidgetItem(source)
            found.setToolTip(why)
            self.table.setItem(i, 2, found)
            self.table.setItem(i, 3, QTableWidgetItem("unreadable" if problem else fmt))
        self._filling = False
        self._show_info(song)

    def _show_info(self, song: Song) -> None:
        self.song_title.setText(f"{song.name}  \u00b7  {describe_song(song)}")
        mixture = (f"mixture: {song.mixture.name}" if song.mixture is not None
                   else "mixture: the sum of the stems")
        mapping = (f"mapping from {self.scan.mapping_file.name}" if self.scan.mapping_file
                   else f"mapping {_guessed(song.layout)} (Save mapping writes {MAPPING_FILE})")
        edited = "  \u00b7  edited, not saved yet" if self.edited else ""
        self.info.setText(f"{mixture}  \u00b7  {mapping}{edited}")
        self.info.setStyleSheet("")
        problems = [*song.problems, *(self.scan.problems if self.scan else [])]
        self.problems.setText("\n".join(f"\u26a0 {p}" for p in problems[:6]))
        self.problems.setVisible(bool(problems))
        self._update_buttons()

    def _target_changed(self, key: str, target: str) -> None:
        from stemwright.models.multitrack.folders import apply_overrides

        song = self.current_song()
        if self._filling or song is None:
            return
        changes = {key: target}
        if target == MIXTURE and song.mixture is not None:
            old = mixture_key(song) or song.mixture.name
            if old != key:  # one mixture: the old one becomes a track left out
                changes = {old: IGNORE, key: MIXTURE}
        apply_overrides(song, changes, "edited")
        for track in song.tracks:
            if track.key in changes and track.source == "override":
                track.source = "edited"
        self.edited = True
        self._show_info(song)
        self.songs.currentItem().setToolTip(describe_song(song))
        self.songs.currentItem().setText(self._song_text(song))
        # the rows change (a mixture becomes a track...): rebuilt once this combo box's
        # signal has returned, never while it is being emitted
        QTimer.singleShot(0, self, self._fill_table)

    def set_target(self, key: str, target: str) -> None:
        """Map track `key` of the current song to `target` (a stem id, IGNORE or MIXTURE),
        as choosing it in the table does."""
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() == key:
                combo = self.table.cellWidget(row, 1)
                combo.setCurrentIndex(combo.findData(target))
                return
        raise KeyError(key)

    # -- actions ----------------------------------------------------------------------
    def save_mapping(self) -> None:
        """Write the mapping file in the background."""
        if self.scan is None or self.task is not None:
            return
        self._start(CallTask(save_mapping, self.scan, title="Saving the mapping"),
                    self._saved, self._save_failed)

    def _saved(self, path: Path) -> None:
        self.edited = False
        if self.scan is not None:
            self.scan.mapping_file = Path(path)
            for song in self.scan.songs:  # what was edited here is now in the file
                for track in song.tracks:
                    if track.source == "edited":
                        track.source = "override"
        self._fill_table()
        self.info.setText(f"Saved the mapping to {path}")
        self.mappingSaved.emit(Path(path))

    def _save_failed(self, exc: BaseException) -> None:
        self.info.setText(f"Could not save the mapping: {exc}")
        self.info.setStyleSheet("color: #f08a7e")

    def open_song(self) -> None:
        """Open the current song (if it has a usable track)."""
        song = self.current_song()
        if song is None:
            return
        if not song.stems_present():
            self.info.setText(f"{song.name}: no track maps to a stem, so there is nothing to "
                              "open; set the stems in the table.")
            self.info.setStyleSheet("color: #f08a7e")
            return
        self.songChosen.emit(song)
        self.accept()

    def _update_buttons(self) -> None:
        busy = self.task is not None
        song = self.current_song()
        self.open_button.setEnabled(song is not None and not busy)
        self.save_button.setEnabled(self.scan is not None and not busy)

    def done(self, result: int) -> None:
        if self.task is not None:
            self.task.stop_and_wait(2000)
        super().done(result)


def _format(info: Any) -> str:
    if info is None:
        return ""
    channels = {1: "mono", 2: "stereo"}.get(info.channels, f"{info.channels} ch")
    return (f"{info.format} \u00b7 {info.samplerate / 1000:g} kHz \u00b7 {channels} \u00b7 "
            f"{format_time(info.frames / max(info.samplerate, 1))}")


def found_by(track: Track, layout: str) -> tuple[str, str]:
    """How a track was mapped to its stem, in words, and a tooltip saying more: the
    layout's standard file names (MUSDB18), the song's metadata (the instrument it names),
    the track's file name, its folder's name, nothing (so "other"), or the mapping file."""
    source, instrument = track.source, track.instrument
    if source == "metadata":
        if layout == "musdb":
            return ("MUSDB18 file name", f"A MUSDB18 song: {track.path.name} is the "
                    f"{track.stem} stem by the layout's standard file names.")
        if layout == "nistems":
            return (f"NI Stems name: {instrument}", f"The .stem.mp4 file names this stem "
                    f"\"{instrument}\"; that name goes to {track.stem}.")
        where = "Slakh metadata" if layout == "slakh" else "metadata"
        if instrument:
            return (f"{where}: {instrument}", f"The song's metadata file calls this track "
                    f"\"{instrument}\"; that instrument goes to {track.stem}.")
        return (where, "The song's metadata file maps this track to its stem.")
    if source == "name":
        from stemwright.models.multitrack.folders import stem_for_name

        if stem_for_name(track.path.name) is None and "/" in track.key:
            folder = track.key.rsplit("/", 1)[0]
            return (f"folder name: {folder}", f"The file's name says nothing; the folder "
                    f"\"{folder}\" it is in goes to {track.stem}.")
        why = f"The file name \"{track.path.stem}\" goes to {track.stem}."
        if instrument:  # metadata that names an instrument no rule knows
            why = f"The metadata's \"{instrument}\" matched no stem; {why[0].lower()}{why[1:]}"
        return ("file name", why)
    if source == "default":
        return ("nothing matched", "Neither metadata nor the name says what this is: it goes "
                "to \"other\". Choose its stem here if that is wrong.")
    if source == "override":
        return ("mapping file", f"Set in the song folder's {MAPPING_FILE}.")
    if source == "edited":
        return ("edited here", "Changed in this dialog (Save mapping keeps it).")
    return (SOURCES.get(source, source), "")


def mixture_found_by(song: Song) -> tuple[str, str]:
    """How the song's mixture file was found, in words, with a tooltip."""
    if song.layout == "musdb":
        return ("MUSDB18 file name", "A MUSDB18 song's mixture is mixture.wav.")
    if song.layout == "medleydb":
        return ("metadata: mix file", "The song's metadata names its mix file.")
    if song.layout == "slakh":
        return ("Slakh file name", "A Slakh2100 song's mixture is mix.flac.")
    if song.layout == "nistems":
        return ("NI Stems mix", "A .stem.mp4 file's first track is the song's mix.")
    return ("file name", "Its name says it is the song's mix (\"mix\", \"master\", the "
            "song's own name...).")


def _guessed(layout: str) -> str:
    """Where a song's mapping came from when no mapping file says."""
    if layout == "tracks":
        return "guessed from the file names"
    if layout == "musdb":
        return "from the MUSDB18 file names"
    return "from the song's metadata"


__all__ = ["MappingDialog", "MultitrackLoadTask", "MultitrackSong", "CallTask", "start_task",
           "scan",
           "save_mapping", "describe_song", "found_by", "mixture_found_by", "PROCEDURE",
           "VisibleChecks", "RowToggles"]
