"""The Batch queue window (File > Batch queue..., Ctrl+B): many songs separated one after
another in the background with one model, output folder and format, as `stemwright
separate` does (the same folder search, output folders, files and `.stemwright.json`
record, so the app and the CLI agree on what is already done).

The queue (songs, states, settings) is kept in `batch_queue.json` next to the app's
settings, written at every change, and restored when the window opens after a restart;
the song that was running then waits again. The state lives in `batch_state`, the
running in `batch_runner`; this module only shows them (the output options -- files,
bitrate, NI Stems slots and codec, naming -- are in `batch_queue_options`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.audio.io import SAVE_FORMATS
from stemwright.models.errors import StemwrightError
from stemwright.models.zoo import catalog as zoo

from ..controllers.batch_runner import BatchRunner
from ..controllers.batch_state import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    FORMATS,
    QUEUE_FILE,
    RUNNING,
    SKIPPED,
    WAITING,
    BatchQueue,
    format_label,
)
from ..settings import Settings, default_export_folder
from .batch_queue_list import STATE_TEXT, QueueList
from .batch_queue_options import OutputOptions

if TYPE_CHECKING:
    from ..main_window import MainWindow

PAUSE_TIP = ("Pause after this song: the running song is finished, then nothing new "
             "starts until Resume.")
STOP_TIP = ("Stop now: the running song is stopped at once (its files are removed) and "
            "goes back to waiting; Resume starts it again.")


def queue_file(settings: Settings) -> Path:
    """Where the queue is saved: next to the app's settings file."""
    return Path(settings.qsettings.fileName()).parent / QUEUE_FILE


class BatchQueueWindow(QWidget):
    """The batch queue: songs, their states, the queue's settings and its controls."""

    def __init__(self, settings: Settings, parent: QWidget | None = None,
                 in_process: bool | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Batch queue \u2014 Stemwright")
        self.setObjectName("batchQueueWindow")
        self.resize(900, 560)
        self.settings = settings
        self.path = queue_file(settings)
        self.queue = BatchQueue.load(self.path)
        if not self.queue.settings.output:
            self.queue.settings.output = str(default_export_folder() / "Batch")
        self.queue.settings.device = settings.device()  # the Separation panel's choice
        self.runner = BatchRunner(self.queue, self, in_process=in_process)
        self.runner.changed.connect(self._changed)
        self.runner.progressed.connect(self._progressed)
        self.runner.problem.connect(self._show_problem)
        self.runner.finished.connect(self._update_buttons)
        self.messages: list[str] = []  # what was refused or went wrong, last first
        self._build()
        self._load_settings()
        self.refresh()

    # -- construction -------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        box = QGroupBox("Settings for every song")
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        for entry in zoo.list_models():
            label = entry.title
            if entry.needs_download and not zoo.is_installed(entry.name):
                label += "  (download it first in the Separation panel)"
            self.model_combo.addItem(label, entry.name)
        self.format_combo = QComboBox()
        for fmt in FORMATS:
            self.format_combo.addItem(format_label(fmt), fmt)
        self.depth_combo = QComboBox()
        fmt_row = QHBoxLayout()
        fmt_row.addWidget(self.format_combo, 1)
        fmt_row.addWidget(self.depth_combo)
        self.output_edit = QLineEdit()
        self.browse_button = QPushButton("Browse\u2026")
        self.browse_button.clicked.connect(self.choose_output)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(self.browse_button)
        self.skip_check = QCheckBox("Skip songs already done (same record as "
                                    "stemwright separate --skip-existing)")
        self.overwrite_check = QCheckBox("Overwrite existing files")
        self.options = OutputOptions(self)
        form.addRow("Model:", self.model_combo)
        form.addRow("Format:", fmt_row)
        self.options.add_to(form, fmt_row)
        form.addRow("Output folder:", out_row)
        checks = QHBoxLayout()
        checks.addWidget(self.skip_check)
        checks.addWidget(self.overwrite_check)
        checks.addStretch(1)
        checks.addWidget(self.options.more_button)
        form.addRow("", checks)
        form.addRow("", self.options.more)
        layout.addWidget(box)

        self.add_files_button = QPushButton("Add files\u2026")
        self.add_folder_button = QPushButton("Add folder\u2026")
        self.up_button = QPushButton("Move up")
        self.down_button = QPushButton("Move down")
        self.remove_button = QPushButton("Remove")
        self.cancel_button = QPushButton("Cancel song")
        self.retry_button = QPushButton("Run again")
        edit_row = QHBoxLayout()
        for button in (self.add_files_button, self.add_folder_button):
            edit_row.addWidget(button)
        edit_row.addStretch(1)
        for button in (self.up_button, self.down_button, self.remove_button,
                       self.cancel_button, self.retry_button):
            edit_row.addWidget(button)
        layout.addLayout(edit_row)

        self.list = QueueList()
        self.list.setToolTip("Drop audio files or folders here; drag rows to reorder")
        layout.addWidget(self.list, 1)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #ff7b72")
        self.message_label.setVisible(False)
        layout.addWidget(self.message_label)

        self.overall = QProgressBar()
        self.overall.setRange(0, 1000)
        self.overall.setFormat("%p%")
        self.summary_label = QLabel("")
        progress_row = QHBoxLayout()
        progress_row.addWidget(QLabel("Overall:"))
        progress_row.addWidget(self.overall, 1)
        progress_row.addWidget(self.summary_label)
        layout.addLayout(progress_row)

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.pause_button = QPushButton("Pause after this song")
        self.pause_button.setToolTip(PAUSE_TIP)
        self.stop_button = QPushButton("Stop now")
        self.stop_button.setToolTip(STOP_TIP)
        self.cancel_all_button = QPushButton("Cancel all")
        self.cancel_all_button.setToolTip("Stop the running song and cancel every waiting "
                                          "one")
        self.clear_button = QPushButton("Clear finished")
        self.state_label = QLabel("")
        self.state_label.setStyleSheet("color: #9aa3b2")
        run_row = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button,
                       self.cancel_all_button):
            run_row.addWidget(button)
        run_row.addWidget(self.state_label, 1)
        run_row.addWidget(self.clear_button)
        layout.addLayout(run_row)

        self.add_files_button.clicked.connect(self.add_files_dialog)
        self.add_folder_button.clicked.connect(self.add_folder_dialog)
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button.clicked.connect(lambda: self.move_selected(1))
        self.remove_button.clicked.connect(self.remove_selected)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.retry_button.clicked.connect(self.retry_selected)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.runner.pause_after_current)
        self.stop_button.clicked.connect(self.runner.stop_now)
        self.cancel_all_button.clicked.connect(self.runner.cancel_all)
        self.clear_button.clicked.connect(self.clear_finished)
        self.list.pathsDropped.connect(self.add_paths)
        self.list.reordered.connect(self._reordered)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.model_combo.currentIndexChanged.connect(self._settings_changed)
        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self.depth_combo.currentIndexChanged.connect(self._settings_changed)
        self.output_edit.editingFinished.connect(self._settings_changed)
        self.skip_check.toggled.connect(self._settings_changed)
        self.overwrite_check.toggled.connect(self._settings_changed)
        self.options.changed.connect(self._settings_changed)
        QShortcut(QKeySequence.StandardKey.Delete, self.list, self.remove_selected)

    def _load_settings(self) -> None:
        s = self.queue.settings
        for combo in (self.model_combo, self.format_combo, self.depth_combo,
                      self.skip_check, self.overwrite_check, self.output_edit):
            combo.blockSignals(True)
        index = self.model_combo.findData(s.model)
        self.model_combo.setCurrentIndex(max(0, index if index >= 0 else
                                             self.model_combo.findData(zoo.DEFAULT_MODEL)))
        self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(s.format)))
        self._fill_depths(s.bit_depth)
        self.output_edit.setText(s.output)
        self.skip_check.setChecked(s.skip_existing)
        self.overwrite_check.setChecked(s.overwrite)
        self.options.load(s, self._produced())
        for combo in (self.model_combo, self.format_combo, self.depth_combo,
                      self.skip_check, self.overwrite_check, self.output_edit):
            combo.blockSignals(False)
        self._settings_changed()

    def _fill_depths(self, depth: int) -> None:
        fmt = self.format_combo.currentData()
        self.depth_combo.blockSignals(True)
        self.depth_combo.clear()
        for d in SAVE_FORMATS.get(fmt, ()):
            self.depth_combo.addItem("32-bit float" if d == 32 else f"{d}-bit", d)
        self.depth_combo.setCurrentIndex(max(0, self.depth_combo.findData(depth)))
        self.depth_combo.setVisible(fmt in SAVE_FORMATS)
        self.depth_combo.blockSignals(False)

    # -- settings -----------------------------------------------------------------------
    def _produced(self) -> tuple[str, ...]:
        """The stems the chosen model makes (none for an unknown one)."""
        try:
            return tuple(zoo.get_entry(str(self.model_combo.currentData())).mapping.produced)
        except (KeyError, StemwrightError):
            return ()

    def _format_changed(self) -> None:
        self._fill_depths(self.queue.settings.bit_depth)
        self.options.set_format(str(self.format_combo.currentData()))  # default bitrate
        self._settings_changed()

    def _settings_changed(self) -> None:
        s = self.queue.settings
        s.model = str(self.model_combo.currentData() or zoo.DEFAULT_MODEL)
        s.format = str(self.format_combo.currentData() or "wav")
        if self.depth_combo.count():
            s.bit_depth = int(self.depth_combo.currentData())
        s.output = self.output_edit.text().strip()
        s.skip_existing = self.skip_check.isChecked()
        s.overwrite = self.overwrite_check.isChecked()
        self.options.set_model(self._produced())
        self.options.store(s)
        self.save()
        self.refresh()

    def choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder",
                                                  self.output_edit.text())
        if folder:
            self.output_edit.setText(folder)
            self._settings_changed()

    # -- the songs ----------------------------------------------------------------------
    def add_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add songs", self.settings.last_folder(),
            "Audio (*.wav *.flac *.mp3 *.ogg *.oga *.opus *.m4a *.aac *.aif *.aiff);;"
            "All files (*)")
        if files:
            self.settings.set_last_folder(str(Path(files[0]).parent))
            self.add_paths(files)

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of songs",
                                                  self.settings.last_folder())
        if folder:
            self.add_paths([folder])

    def add_paths(self, paths: list[str]) -> list[str]:
        """Add files and folders (searched recursively); returns the lines refused,
        which are also shown under the list."""
        added, refused = self.queue.add(paths)
        self.show_messages(refused)
        if added:
            self.save()
        self.refresh()
        return refused

    def selected_ids(self) -> list[str]:
        return self.list.ids(selected=True)

    def select(self, ids: list[str]) -> None:
        self.list.clearSelection()
        for n in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(n)
            if item.data(0, Qt.ItemDataRole.UserRole) in ids:
                item.setSelected(True)
                self.list.setCurrentItem(item)

    def move_selected(self, step: int) -> None:
        ids = self.selected_ids()
        order = sorted(ids, key=self.queue.index, reverse=step > 0)
        for item_id in order:
            n = self.queue.index(item_id)
            self.queue.move(item_id, max(0, n + step))
        self.save()
        self.refresh()
        self.select(ids)

    def _reordered(self, ids: list[str]) -> None:
        selected = self.selected_ids()
        self.queue.reorder(ids)
        self.save()
        self.refresh()
        self.select(selected)

    def remove_selected(self) -> None:
        for item_id in self.selected_ids():
            if self.runner.task is not None and self.runner.task.item_id == item_id:
                self.runner.cancel_item(item_id)
            self.queue.remove(item_id)
        self.save()
        self.refresh()

    def cancel_selected(self) -> None:
        for item_id in self.selected_ids():
            self.runner.cancel_item(item_id)

    def retry_selected(self) -> None:
        for item_id in self.selected_ids():
            item = self.queue.get(item_id)
            if item is not None and item.state in FINISHED:
                item.state, item.reason, item.fraction = WAITING, "", 0.0
        self._changed()

    def clear_finished(self) -> None:
        self.queue.items = [i for i in self.queue.items if i.state not in FINISHED]
        self._changed()

    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        """Start or resume the queue."""
        self.show_messages([])
        self.runner.start()
        self._update_buttons()

    def _show_problem(self, text: str) -> None:
        self.show_messages([text])
        self._update_buttons()

    def show_messages(self, lines: list[str]) -> None:
        self.messages = list(lines)
        shown = lines[:4] + ([f"\u2026 and {len(lines) - 4} more"] if len(lines) > 4 else [])
        self.message_label.setText("\n".join(shown))
        self.message_label.setVisible(bool(lines))

    def _changed(self) -> None:
        self.save()
        self.refresh()

    def _progressed(self, item_id: str) -> None:
        item = self.queue.get(item_id)
        bar = self._bars.get(item_id)
        if item is not None and bar is not None:
            bar.setValue(round(item.fraction * 1000))
        self._update_overall()

    def save(self) -> None:
        try:
            self.queue.save(self.path)
        except OSError as exc:
            self.show_messages([f"The queue could not be saved to {self.path}: "
                                f"{exc.strerror or exc}"])

    # -- drawing ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw the list from the queue (keeping the selection)."""
        self._bars = self.list.fill(self.queue)
        self._update_overall()
        self._update_buttons()

    def _update_overall(self) -> None:
        self.overall.setValue(round(self.queue.overall() * 1000))
        c = self.queue.counts()
        parts = [f"{c[s]} {STATE_TEXT[s].split()[0].lower()}" for s in
                 (DONE, SKIPPED, FAILED, CANCELLED, WAITING) if c[s]]
        self.summary_label.setText(f"{len(self.queue.items)} songs"
                                   + (": " + ", ".join(parts) if parts else ""))

    def _update_buttons(self) -> None:
        ids = self.selected_ids()
        items = [i for i in (self.queue.get(x) for x in ids) if i is not None]
        running, busy = self.runner.running(), self.runner.busy()
        waiting = self.queue.counts()[WAITING]
        self.start_button.setEnabled(not self.runner.active and waiting > 0)
        paused = running or any(i.state in FINISHED for i in self.queue.items)
        self.start_button.setText("Resume" if paused and waiting and not self.runner.active
                                  else "Start")
        self.pause_button.setEnabled(running and self.runner.active)
        self.stop_button.setEnabled(running)
        self.cancel_all_button.setEnabled(busy or waiting > 0)
        for w in (self.up_button, self.down_button, self.remove_button):
            w.setEnabled(bool(items))
        self.cancel_button.setEnabled(any(i.state in (WAITING, RUNNING) for i in items))
        self.retry_button.setEnabled(any(i.state in FINISHED for i in items))
        self.clear_button.setEnabled(any(i.state in FINISHED for i in self.queue.items))
        for w in (self.model_combo, self.format_combo, self.depth_combo, self.output_edit,
                  self.browse_button, self.skip_check, self.overwrite_check):
            w.setEnabled(not running)
        self.options.set_enabled(not running)
        if running and self.runner.active:
            self.state_label.setText("Running")
        elif running:
            self.state_label.setText("Pausing: the running song finishes, then the "
                                     "queue waits")
        elif waiting and any(i.state in FINISHED for i in self.queue.items):
            self.state_label.setText("Paused")
        else:
            self.state_label.setText("")

    # -- closing ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the queue (the running song waits again) and save it."""
        self.runner.shutdown()
        self.save()


def open_batch_queue(window: MainWindow) -> BatchQueueWindow:
    """Show the main window's batch queue (made on first use; it keeps running while
    hidden)."""
    dialog = getattr(window, "batch_window", None)
    if dialog is None:
        dialog = BatchQueueWindow(window.settings, window)
        window.batch_window = dialog
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def may_quit(window: MainWindow) -> bool:
    """Ask before quitting while the batch queue runs (True: go ahead)."""
    dialog = getattr(window, "batch_window", None)
    if dialog is None or not dialog.runner.busy():
        return True
    return window.confirm("Quit", "The batch queue is separating songs. Stop it and quit? "
                          "The song being separated goes back to waiting; the queue goes "
                          "on when you open it again.")


def shutdown(window: MainWindow) -> None:
    """Stop the batch queue (if any) as the main window closes."""
    dialog = getattr(window, "batch_window", None)
    if dialog is not None:
        dialog.shutdown()
