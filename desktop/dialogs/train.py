"""The fine-tune dialog: pick multitrack folders, check the songs and their stem mapping,
set the main parameters, then train with live curves; pause, stop, resume.

Training runs in its own process (`stemwright train --json --low-priority`, one thread
fewer than the machine has), so the window never waits on it and playback keeps its
cores; the dialog reads the process's JSON-lines output and the run folder's log. Pause and
stop go through the run folder's control file (see models/training.py): stopping keeps the
last finished epoch, and Resume continues from there. When a run finishes, `modelTrained`
carries the new model's name, which the window offers in its model selector.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.errors import StemwrightError
from stemwright.models.stems import STEM_IDS, STEMS, get_stem
from stemwright.models.zoo import catalog as zoo

from ..engine.workers import Task

CONTROL_FILE = "control"  # as models/training.py reads it
LOSS_COLOR = "#e6e9ef"
LOSS_DOTS = 200  # up to this many steps, each is drawn as a dot too


class ScanTask(Task):
    """Scan multitrack folders (file headers only) on a worker thread: [(folder, Scan or
    error message)]."""

    title = "Scanning folders"

    def __init__(self, folders: list[str], parent=None) -> None:
        super().__init__(parent)
        self.folders = list(folders)

    def work(self) -> list[tuple[str, object]]:
        from stemwright.models.multitrack.folders import scan_folder

        out: list[tuple[str, object]] = []
        for folder in self.folders:
            self.check_cancel()
            try:
                out.append((folder, scan_folder(folder)))
            except (StemwrightError, OSError) as exc:
                out.append((folder, str(exc)))
        return out


def trainable_models(current: str | None = None) -> list[tuple[str, str]]:
    """(label, --model value): the installed neural models to fine-tune first (`current`,
    the model chosen in the window, at the top), then new architectures from scratch.
    Fine-tuning is what the dialog is for; from scratch needs far more songs."""
    from stemwright.models.architectures.registry import ARCHITECTURES

    tune: list[tuple[str, str]] = []
    for entry in zoo.list_models():
        if entry.family in ("classic", "roformer", "recipe") or (entry.needs_download and not
                                         zoo.is_installed(entry.name)):
            continue
        if entry.family == "demucs" and len(entry.files) > 1:
            continue  # a bag of models
        tune.append((f"Fine-tune {entry.title}", entry.name))
    first = current if any(v == current for _, v in tune) else zoo.DEFAULT_MODEL
    tune.sort(key=lambda lv: lv[1] != first)  # stable: the rest keep the catalogue order
    return tune + [(f"{a.title} (new, from scratch)", name)
                   for name, a in ARCHITECTURES.items()]


def find_runs(folder: str | os.PathLike) -> list[Path]:
    """The runs in `folder` (sub-folders holding a run's config.json), newest first."""
    root = Path(folder)
    try:
        runs = [p for p in root.iterdir() if (p / "config.json").is_file()]
    except OSError:
        return []
    return sorted(runs, key=lambda p: (p / "config.json").stat().st_mtime, reverse=True)


def open_folder(folder: str | os.PathLike) -> bool:
    """Show `folder` in the file manager (created first when missing)."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class TrainDialog(QDialog):
    """Fine-tune a model on the user's multitrack folders (see the module docstring)."""

    modelTrained = Signal(str)  # noqa: N815 - Qt signal naming
    #: every record the training process reports (for tests and the window's status bar)
    event = Signal(dict)

    def __init__(self, parent: QWidget | None = None, python: str | None = None,
                 runs_dir: str | os.PathLike | None = None, settings: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune a model")
        self.resize(1100, 720)
        self.python = python or sys.executable
        if settings is None:  # the window's settings (`Settings`), when it has some
            settings = getattr(parent, "settings", None)
            settings = settings if hasattr(settings, "runs_folder") else None
        self.settings = settings
        if runs_dir is None:
            from ..settings import default_runs_folder
            runs_dir = settings.runs_folder() if settings is not None else \
                default_runs_folder()
        self.runs_dir = Path(runs_dir)
        self.process: QProcess | None = None
        self.scan_task: ScanTask | None = None
        self.run_dir: Path | None = None
        self.paused = False
        self.stopping = False
        self.last_end: dict[str, Any] | None = None
        self._buffer = b""
        self._stderr: list[str] = []
        self._build()
        self._restore()
        self.refresh_runs()
        self._update_buttons()

    # -- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self._build_data())
        split.addWidget(self._build_training())
        split.setSizes([430, 670])
        layout = QVBoxLayout(self)
        layout.addWidget(split)

    def _build_data(self) -> QWidget:
        box = QGroupBox("Songs")
        lay = QVBoxLayout(box)
        self.folder_list = QListWidget()
        self.folder_list.setMaximumHeight(90)
        lay.addWidget(self.folder_list)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add folder…")
        self.add_button.clicked.connect(self._choose_folder)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove_folder)
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.song_tree = QTreeWidget()
        self.song_tree.setHeaderLabels(["Song / track", "Stem", "Length"])
        self.song_tree.setColumnWidth(0, 220)
        lay.addWidget(self.song_tree, 1)
        self.data_label = QLabel("Add one or more folders of multitrack songs.")
        self.data_label.setWordWrap(True)
        lay.addWidget(self.data_label)
        return box

    def _build_training(self) -> QWidget:
        panel = QWidget()
        lay = QVBoxLayout(panel)
        params = QGroupBox("Training")
        grid = QGridLayout(params)
        form = QFormLayout()
        self.model_combo = QComboBox()
        for label, value in trainable_models(self.current_model()):
            self.model_combo.addItem(label, value)
        self.model_combo.setCurrentIndex(0)  # fine-tune the current model
        self.model_combo.setEditable(False)
        self.model_combo.setToolTip("Fine-tuning an installed model needs a few songs; a "
                                    "new architecture from scratch needs many more")
        form.addRow("Model", self.model_combo)
        self.small_check = QCheckBox("Tiny configuration (a quick try-out)")
        form.addRow("", self.small_check)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10000)
        self.epochs.setValue(20)
        form.addRow("Epochs", self.epochs)
        self.segment = QDoubleSpinBox()
        self.segment.setRange(0.1, 60.0)
        self.segment.setValue(6.0)
        self.segment.setSuffix(" s")
        form.addRow("Segment", self.segment)
        self.batch = QSpinBox()
        self.batch.setRange(1, 512)
        self.batch.setValue(8)
        form.addRow("Batch", self.batch)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(3e-4)
        form.addRow("Learning rate", self.lr)
        self.name_edit = QLineEdit("my-model")
        form.addRow("Model name", self.name_edit)
        grid.addLayout(form, 0, 0)
        stems_box = QVBoxLayout()
        stems_box.addWidget(QLabel("Stems to separate"))
        self.stem_checks: dict[str, QCheckBox] = {}
        for stem in STEMS:
            check = QCheckBox(stem.name)
            check.setChecked(True)
            self.stem_checks[stem.id] = check
            stems_box.addWidget(check)
        stems_box.addStretch(1)
        grid.addLayout(stems_box, 0, 1)
        from .multitrack import VisibleChecks

        self.check_style = VisibleChecks()  # unticked boxes that show on the dark theme
        for check in (self.small_check, *self.stem_checks.values()):
            check.setStyle(self.check_style)
        lay.addWidget(params)

        row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the chosen run from its last finished epoch")
        self.resume_button.clicked.connect(self.resume)
        self.run_combo = QComboBox()
        self.run_combo.setMinimumContentsLength(18)
        self.run_combo.setToolTip("The runs found in the runs folder: Resume continues the "
                                  "one chosen here")
        self.run_combo.currentIndexChanged.connect(lambda _i: self._update_buttons())
        for b in (self.start_button, self.pause_button, self.stop_button):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.run_combo)
        row.addWidget(self.resume_button)
        lay.addLayout(row)
        runs_row = QHBoxLayout()
        runs_row.addWidget(QLabel("Runs folder:"))
        self.runs_label = QLabel("")
        self.runs_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.runs_label.setStyleSheet("color: #9aa3b2")
        runs_row.addWidget(self.runs_label, 1)
        self.runs_change_button = QPushButton("Change…")
        self.runs_change_button.clicked.connect(self._choose_runs_folder)
        self.open_runs_button = QPushButton("Open folder")
        self.open_runs_button.setToolTip("Show the runs folder (checkpoints, logs) in the "
                                         "file manager")
        self.open_runs_button.clicked.connect(lambda: open_folder(self.runs_dir))
        runs_row.addWidget(self.runs_change_button)
        runs_row.addWidget(self.open_runs_button)
        lay.addLayout(runs_row)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        lay.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        self.loss_plot = pg.PlotWidget(title="Training loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen(LOSS_COLOR, width=1.5))
        self.sdr_plot = pg.PlotWidget(title="Validation SDR (dB) per stem")
        self.sdr_plot.setLabel("bottom", "epoch")
        self.sdr_curves: dict[str, Any] = {}
        # the legend is a line under the plot: inside a short plot it was cut off
        self.sdr_legend = QLabel("")
        self.sdr_legend.setWordWrap(True)
        sdr_box = QWidget()
        sdr_lay = QVBoxLayout(sdr_box)
        sdr_lay.setContentsMargins(0, 0, 0, 0)
        sdr_lay.addWidget(self.sdr_plot, 1)
        sdr_lay.addWidget(self.sdr_legend)
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.loss_plot)
        plots.addWidget(sdr_box)
        lay.addWidget(plots, 1)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumHeight(90)
        lay.addWidget(self.log_view)
        self.loss_x: list[float] = []
        self.loss_y: list[float] = []
        self.sdr: dict[str, tuple[list[float], list[float]]] = {}
        return panel

    # -- remembered choices -----------------------------------------------------------
    def current_model(self) -> str:
        """The model chosen in the window's Separation panel, or the default model."""

        if self.settings is None:
            return zoo.DEFAULT_MODEL
        return str(self.settings.model(zoo.DEFAULT_MODEL))

    def _restore(self) -> None:
        """The choices of the last run (or of the last time the dialog was closed)."""
        s = self.settings
        if s is None:
            return
        index = self.model_combo.findData(s.value("train/model", "", str))
        if index >= 0:
            self.model_combo.setCurrentIndex(index)
        self.small_check.setChecked(bool(s.value("train/small", False, bool)))
        self.epochs.setValue(int(s.value("train/epochs", self.epochs.value(), int)))
        self.segment.setValue(float(s.value("train/segment", self.segment.value(), float)))
        self.batch.setValue(int(s.value("train/batch", self.batch.value(), int)))
        self.lr.setValue(float(s.value("train/lr", self.lr.value(), float)))
        self.name_edit.setText(str(s.value("train/name", "", str) or self.name_edit.text()))
        stems = _json_list(s.value("train/stems", "", str))
        if stems:
            for stem, check in self.stem_checks.items():
                check.setChecked(stem in stems)
        folders = [f for f in _json_list(s.value("train/folders", "", str))
                   if Path(f).is_dir()]
        for folder in folders:
            self.folder_list.addItem(folder)
        if folders:
            self.rescan()

    def save_choices(self) -> None:
        """Remember the dialog's choices for next time."""
        s = self.settings
        if s is None:
            return
        s.set_value("train/model", str(self.model_combo.currentData()))
        s.set_value("train/small", self.small_check.isChecked())
        s.set_value("train/epochs", self.epochs.value())
        s.set_value("train/segment", self.segment.value())
        s.set_value("train/batch", self.batch.value())
        s.set_value("train/lr", self.lr.value())
        s.set_value("train/name", self.name_edit.text().strip())
        s.set_value("train/stems", json.dumps(
            [k for k, c in self.stem_checks.items() if c.isChecked()]))
        s.set_value("train/folders", json.dumps(self.folders()))
        s.sync()

    # -- runs -------------------------------------------------------------------------
    def refresh_runs(self, select: Path | None = None) -> None:
        """List the runs found in the runs folder (Resume continues the chosen one)."""
        self.runs_label.setText(str(self.runs_dir))
        self.runs_label.setToolTip(f"Each run is a folder here (checkpoints, log.jsonl): "
                                   f"{self.runs_dir}")
        previous = select or self.selected_run()
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        runs = find_runs(self.runs_dir)
        for run in runs:
            self.run_combo.addItem(run.name, str(run))
        if not runs:
            self.run_combo.addItem("No runs yet", None)
        if previous is not None:
            index = self.run_combo.findData(str(previous))
            if index >= 0:
                self.run_combo.setCurrentIndex(index)
        self.run_combo.blockSignals(False)
        self._update_buttons()

    def runs(self) -> list[Path]:
        """The runs listed (newest first)."""
        return [Path(self.run_combo.itemData(i)) for i in range(self.run_combo.count())
                if self.run_combo.itemData(i)]

    def selected_run(self) -> Path | None:
        """The run Resume continues, or None when there is none."""
        if not hasattr(self, "run_combo"):
            return None
        data = self.run_combo.currentData()
        return Path(data) if data else None

    def set_runs_folder(self, folder: str | os.PathLike) -> None:
        """Write new runs to `folder` and list the runs in it."""
        self.runs_dir = Path(folder)
        if self.settings is not None:
            self.settings.set_runs_folder(str(self.runs_dir))
        self.refresh_runs()

    def _choose_runs_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for training runs",
                                                  str(self.runs_dir))
        if folder:
            self.set_runs_folder(folder)

    # -- folders and songs ------------------------------------------------------------
    def folders(self) -> list[str]:
        return [self.folder_list.item(i).text() for i in range(self.folder_list.count())]

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of multitrack songs")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str | os.PathLike) -> None:
        """Add a folder of songs and rescan (on a worker thread)."""
        folder = str(Path(folder))
        if folder not in self.folders():
            self.folder_list.addItem(folder)
        self.rescan()

    def _remove_folder(self) -> None:
        for item in self.folder_list.selectedItems():
            self.folder_list.takeItem(self.folder_list.row(item))
        self.rescan()

    def rescan(self) -> None:
        if self.scan_task is not None and self.scan_task.isRunning():
            self.scan_task.cancel()
        self.data_label.setText("Reading the folders…")
        task = ScanTask(self.folders(), self)
        task.succeeded.connect(self._scanned)
        self.scan_task = task
        task.start()

    def _scanned(self, results: list[tuple[str, object]]) -> None:
        if self.sender() is not self.scan_task:
            return
        self.song_tree.clear()
        count, problems, present = 0, [], {s: 0 for s in STEM_IDS}
        for folder, scan in results:
            if isinstance(scan, str):
                problems.append(scan)
                continue
            for song in scan.songs:
                count += 1
                stems = song.stems_present()
                for s in stems:
                    present[s] += 1
                item = QTreeWidgetItem([song.key if song.key != "." else Path(folder).name,
                                        ", ".join(get_stem(s).name.lower() for s in stems),
                                        f"{song.duration:.1f} s"])
                for t in song.tracks:
                    child = QTreeWidgetItem([t.key, t.stem.replace("_", " "), ""])
                    if t.stem in STEM_IDS:
                        child.setForeground(1, QColor(get_stem(t.stem).color))
                    item.addChild(child)
                self.song_tree.addTopLevelItem(item)
        summary = f"{count} song{'s' * (count != 1)}"
        if count:
            summary += ": " + ", ".join(f"{get_stem(s).name.lower()} in {n}"
                                        for s, n in present.items())
        self.data_label.setText("; ".join([summary, *problems]))
        self.song_count = count
        self._update_buttons()

    # -- running ----------------------------------------------------------------------
    def running(self) -> bool:
        return self.process is not None and \
            self.process.state() != QProcess.ProcessState.NotRunning

    def arguments(self) -> list[str]:
        """The `stemwright train` arguments for the current settings."""
        name = self.name_edit.text().strip() or "my-model"
        out = self.runs_dir / name
        stems = [s for s, c in self.stem_checks.items() if c.isChecked()]
        args = ["train", *self.folders(), "--model", str(self.model_combo.currentData()),
                "--epochs", str(self.epochs.value()), "--segment", f"{self.segment.value():g}",
                "--batch", str(self.batch.value()), "--lr", f"{self.lr.value():g}",
                "--out", str(out), "--name", name, "--stems", *stems]
        if self.small_check.isChecked():
            args.append("--small")
        return args

    def start(self, extra: list[str] | None = None) -> None:
        """Start a new run with the dialog's settings (`extra`: more CLI options)."""
        if self.running() or not self.folders():
            return
        if not any(c.isChecked() for c in self.stem_checks.values()):
            self.status.setText("Choose at least one stem to separate.")
            return
        self.save_choices()
        args = self.arguments() + list(extra or [])
        self.run_dir = Path(args[args.index("--out") + 1])
        if (self.run_dir / "config.json").exists():
            self.status.setText(f"{self.run_dir} already holds a run: press Resume to "
                                "continue it, or choose another model name.")
            self.refresh_runs(select=self.run_dir)
            return
        self._clear_curves()
        self._launch(args)

    def resume(self) -> None:
        """Continue the chosen run (the last one by default) where it stopped."""
        if self.running():
            return
        run = self.selected_run() or self.run_dir
        if run is None or not (run / "config.json").exists():
            self.status.setText(f"No run to resume in {self.runs_dir}.")
            return
        self.run_dir = run
        self._clear_curves()
        self._replay_log(run / "log.jsonl")
        self._launch(["train", "--resume", str(run)])

    def _launch(self, args: list[str]) -> None:
        threads = max(1, (os.cpu_count() or 2) - 1)
        full = ["-m", "stemwright.models.cli", *args, "--json", "--low-priority",
                "--threads", str(threads)]
        self.process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("OMP_NUM_THREADS", str(threads))
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._finished)
        self.paused = self.stopping = False
        self.last_end = None
        self._buffer = b""
        self._stderr = []
        self._append(f"$ stemwright {' '.join(args)}")
        self.status.setText("Starting…")
        self.progress.setRange(0, 0)
        self.process.start(self.python, full)
        self._update_buttons()

    def _write_control(self, state: str) -> None:
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / CONTROL_FILE).write_text(state, encoding="utf-8")

    def toggle_pause(self) -> None:
        if not self.running():
            return
        self.paused = not self.paused
        self._write_control("pause" if self.paused else "run")
        self.pause_button.setText("Continue" if self.paused else "Pause")
        self.status.setText("Pausing…" if self.paused else "Continuing…")

    def stop(self) -> None:
        """Stop after the current step (the last finished epoch is kept)."""
        if not self.running():
            return
        self.stopping = True
        self._write_control("stop")
        self.status.setText("Stopping…")
        QTimer.singleShot(15000, self._force_stop)
        self._update_buttons()

    def _force_stop(self) -> None:
        if self.running() and self.stopping:  # e.g. still preparing data
            self.process.terminate()
            QTimer.singleShot(5000, lambda: self.running() and self.process.kill())

    # -- the process's output ---------------------------------------------------------
    def _read_stdout(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                self.handle(record)

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode(errors="replace")
        self._stderr += [line for line in text.splitlines() if line.strip()]
        self._stderr = self._stderr[-20:]

    def _replay_log(self, path: Path) -> None:
        from stemwright.models.training.state import read_log

        records = read_log(path)
        # a resumed run continues after its last finished epoch: later steps are redone
        ends = [i for i, r in enumerate(records) if r.get("event") == "epoch"]
        for record in records[:ends[-1] + 1] if ends else []:
            if record.get("event") in ("step", "epoch"):
                self.handle(record, replay=True)

    def handle(self, e: dict[str, Any], replay: bool = False) -> None:
        """Update the curves and the status from one training record."""
        kind = e.get("event")
        if kind == "data":
            self.status.setText(f"Preparing the songs: {e['done']} of {e['total']}")
        elif kind in ("start", "resume"):
            self.total_epochs = int(e["epochs"])
            self.steps_per_epoch = int(e["steps_per_epoch"])
            self.progress.setRange(0, self.total_epochs * self.steps_per_epoch)
            self.progress.setValue(int(e["step"]))
            self._append(f"{'Resumed' if kind == 'resume' else 'Started'}: "
                         f"{e['architecture']}, {e['parameters'] / 1e6:.2f} M parameters, "
                         f"{e['train_songs']} training / {e['valid_songs']} validation songs"
                         f" on {e['device']}")
            for problem in e.get("problems") or []:
                self._append(f"note: {problem}")
        elif kind == "step":
            self.loss_x.append(float(e["step"]))
            self.loss_y.append(float(e["loss"]))
            if not replay:
                self._show_loss()
                self.progress.setValue(int(e["step"]))
                self.status.setText(f"Epoch {e['epoch'] + 1}, step {e['batch']}/"
                                    f"{e['batches']}: loss {e['loss']:.4f}, "
                                    f"{e['segments_per_s']:.1f} segments/s")
        elif kind == "epoch":
            for stem, value in (e.get("valid_sdr") or {}).items():
                if value is None:
                    continue
                xs, ys = self.sdr.setdefault(stem, ([], []))
                xs.append(float(e["epoch"] + 1))
                ys.append(float(value))
                self._sdr_curve(stem).setData(xs, ys)
            self._show_loss()
            self._show_sdr_legend()
            if not replay:
                sdr = e.get("valid_sdr") or {}
                mean = [v for v in sdr.values() if v is not None]
                self._append(f"epoch {e['epoch'] + 1}: loss {e['train_loss']:.4f}" + (
                    f", mean SDR {sum(mean) / len(mean):.2f} dB" if mean else "")
                    + (" (best so far)" if e.get("improved") else ""))
        elif kind == "paused":
            self.status.setText("Paused. Press Continue to go on.")
        elif kind == "resumed":
            self.status.setText("Continuing…")
        elif kind == "stopped":
            self.status.setText("Stopped.")
        elif kind == "end":
            self.last_end = e
        if not replay:
            self.event.emit(e)

    def _show_loss(self) -> None:
        """The loss curve; every step is a dot while there are few, so a short run (even
        a single step) shows its points instead of an empty plot."""
        few = len(self.loss_x) <= LOSS_DOTS
        self.loss_curve.setData(self.loss_x, self.loss_y, symbol="o" if few else None,
                                symbolSize=5, symbolBrush=LOSS_COLOR,
                                symbolPen=pg.mkPen(None))

    def _show_sdr_legend(self) -> None:
        """Every stem plotted, in its colour, under the plot (never cut off)."""
        stems = [s for s in STEM_IDS if self.sdr.get(s, ([], []))[0]]
        if not stems:
            self.sdr_legend.setText("")
            return
        self.sdr_legend.setText("&nbsp;&nbsp; ".join(
            f"<span style='color:{get_stem(s).color}'>●</span> {get_stem(s).name}"
            f" {self.sdr[s][1][-1]:.1f} dB" for s in stems))

    def legend_stems(self) -> list[str]:
        """The stems the SDR legend lists (ids, canonical order)."""
        return [s for s in STEM_IDS if self.sdr.get(s, ([], []))[0]]

    def _sdr_curve(self, stem: str):
        if stem not in self.sdr_curves:
            color = get_stem(stem).color
            self.sdr_curves[stem] = self.sdr_plot.plot(
                [], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=6,
                symbolBrush=color, symbolPen=pg.mkPen(None), name=get_stem(stem).name)
        return self.sdr_curves[stem]

    def _clear_curves(self) -> None:
        self.loss_x, self.loss_y = [], []
        self.loss_curve.setData([], [])
        for curve in self.sdr_curves.values():
            curve.setData([], [])
        self.sdr = {}
        self._show_sdr_legend()

    def _finished(self, code: int, _status=None) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if code == 0 else 0)
        end = self.last_end or {}
        if code == 0 and end.get("installed"):
            name = str(end["installed"])
            self.status.setText(f"Done: '{name}' is in the model list, ready to separate.")
            self._append(f"finished ({end.get('reason')}); installed as '{name}'")
            self.modelTrained.emit(name)
        elif self.stopping or end.get("reason") == "stopped" or code == 130:
            self.status.setText("Stopped. Resume continues from the last finished epoch.")
        else:
            detail = next((line for line in reversed(self._stderr)
                           if "error" in line.lower()), self._stderr[-1] if self._stderr
                          else f"exit code {code}")
            self.status.setText(f"Training failed: {detail}")
            self._append(f"failed: {detail}")
        self.paused = self.stopping = False
        self.pause_button.setText("Pause")
        self.refresh_runs(select=self.run_dir)
        self._update_buttons()

    def _append(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _update_buttons(self) -> None:
        running = self.running()
        has_songs = bool(getattr(self, "song_count", 0))
        self.start_button.setEnabled(not running and has_songs)
        self.pause_button.setEnabled(running and not self.stopping)
        self.stop_button.setEnabled(running and not self.stopping)
        self.resume_button.setEnabled(not running and self.selected_run() is not None)
        for w in (self.add_button, self.remove_button, self.model_combo, self.small_check,
                  self.epochs, self.segment, self.batch, self.lr, self.name_edit,
                  self.run_combo, self.runs_change_button, *self.stem_checks.values()):
            w.setEnabled(not running)

    def shutdown(self, timeout_ms: int = 8000) -> None:
        """Stop a running training (keeping its last epoch) and the folder scan."""
        if self.scan_task is not None and self.scan_task.isRunning():
            self.scan_task.stop_and_wait()
        if self.running():
            self.stopping = True
            self._write_control("stop")
            if not self.process.waitForFinished(timeout_ms):
                self.process.kill()
                self.process.waitForFinished(2000)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.save_choices()
        self.shutdown()
        super().closeEvent(event)


def _json_list(text: str | None) -> list[str]:
    """A list of strings stored as JSON in the settings ([] when missing or damaged)."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


__all__ = ["ScanTask", "TrainDialog", "trainable_models", "find_runs", "open_folder"]
