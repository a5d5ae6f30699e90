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
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QColor
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

from stemwright.models.stems import STEM_IDS, STEMS, get_stem

from ..engine.workers import Task

CONTROL_FILE = "control"  # as models/training.py reads it
LOSS_COLOR = "#e6e9ef"


class ScanTask(Task):
    """Scan multitrack folders (file headers only) on a worker thread: [(folder, Scan or
    error message)]."""

    title = "Scanning folders"

    def __init__(self, folders: list[str], parent=None) -> None:
        super().__init__(parent)
        self.folders = list(folders)

    def work(self) -> list[tuple[str, object]]:
        from stemwright.models.errors import StemwrightError
        from stemwright.models.multitrack.folders import scan_folder

        out: list[tuple[str, object]] = []
        for folder in self.folders:
            self.check_cancel()
            try:
                out.append((folder, scan_folder(folder)))
            except (StemwrightError, OSError) as exc:
                out.append((folder, str(exc)))
        return out


def trainable_models() -> list[tuple[str, str]]:
    """(label, --model value): architectures from scratch, then installed neural models."""
    from stemwright.models.architectures.registry import ARCHITECTURES
    from stemwright.models.zoo import catalog as zoo

    out = [(f"{a.title} (new, from scratch)", name) for name, a in ARCHITECTURES.items()]
    for entry in zoo.list_models():
        if entry.family == "classic" or (entry.needs_download and not
                                         zoo.is_installed(entry.name)):
            continue
        if entry.family == "demucs" and len(entry.files) > 1:
            continue  # a bag of models
        out.append((f"Fine-tune {entry.title}", entry.name))
    return out


class TrainDialog(QDialog):
    """Fine-tune a model on the user's multitrack folders (see the module docstring)."""

    modelTrained = Signal(str)  # noqa: N815 - Qt signal naming
    #: every record the training process reports (for tests and the window's status bar)
    event = Signal(dict)

    def __init__(self, parent: QWidget | None = None, python: str | None = None,
                 runs_dir: str | os.PathLike | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune a model")
        self.resize(1100, 720)
        self.python = python or sys.executable
        if runs_dir is None:
            from stemwright.models.zoo.catalog import cache_dir
            runs_dir = cache_dir() / "runs"
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
        for label, value in trainable_models():
            self.model_combo.addItem(label, value)
        self.model_combo.setEditable(False)
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
        lay.addWidget(params)

        row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the last run from its last finished epoch")
        self.resume_button.clicked.connect(self.resume)
        for b in (self.start_button, self.pause_button, self.stop_button, self.resume_button):
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)
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
        self.sdr_plot.addLegend(offset=(-5, 5))
        self.sdr_curves: dict[str, Any] = {}
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.sdr_plot)
        lay.addWidget(plots, 1)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumHeight(90)
        lay.addWidget(self.log_view)
        self.loss_x: list[float] = []
        self.loss_y: list[float] = []
        self.sdr: dict[str, tuple[list[float], list[float]]] = {}
        return panel

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
        args = self.arguments() + list(extra or [])
        self.run_dir = Path(args[args.index("--out") + 1])
        if (self.run_dir / "config.json").exists():
            self.status.setText(f"{self.run_dir} already holds a run: press Resume to "
                                "continue it, or choose another model name.")
            return
        self._clear_curves()
        self._launch(args)

    def resume(self) -> None:
        """Continue the last run (or the run of the current model name) where it stopped."""
        if self.running():
            return
        run = self.run_dir or self.runs_dir / (self.name_edit.text().strip() or "my-model")
        if not (run / "config.json").exists():
            self.status.setText(f"No run to resume in {run}.")
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
                self.loss_curve.setData(self.loss_x, self.loss_y)
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
            self.loss_curve.setData(self.loss_x, self.loss_y)
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

    def _sdr_curve(self, stem: str):
        if stem not in self.sdr_curves:
            color = get_stem(stem).color
            self.sdr_curves[stem] = self.sdr_plot.plot(
                [], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=5,
                symbolBrush=color, name=get_stem(stem).name)
        return self.sdr_curves[stem]

    def _clear_curves(self) -> None:
        self.loss_x, self.loss_y = [], []
        self.loss_curve.setData([], [])
        for curve in self.sdr_curves.values():
            curve.setData([], [])
        self.sdr = {}

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
        self._update_buttons()

    def _append(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _update_buttons(self) -> None:
        running = self.running()
        has_songs = bool(getattr(self, "song_count", 0))
        self.start_button.setEnabled(not running and has_songs)
        self.pause_button.setEnabled(running and not self.stopping)
        self.stop_button.setEnabled(running and not self.stopping)
        self.resume_button.setEnabled(not running)
        for w in (self.add_button, self.remove_button, self.model_combo, self.small_check,
                  self.epochs, self.segment, self.batch, self.lr, self.name_edit,
                  *self.stem_checks.values()):
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
        self.shutdown()
        super().closeEvent(event)


__all__ = ["ScanTask", "TrainDialog", "trainable_models"]
