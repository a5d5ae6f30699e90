"""The Evaluate dialog: score models and oracles on a folder of multitrack songs.

Pick a folder (scanned on a worker thread), the installed models and the oracles (IRM1,
IRM2, IBM), and Run: `models.evaluate.evaluate` mixes every song into six stems, separates
it with every system and scores each stem (BSS Eval v4, SI-SDR, whole-track SDR). The
table fills song by song while the rest runs; it shows one metric at a time, with the
median of each stem over the songs and the mean of those medians, and box plots compare
the systems stem by stem. The report is saved with the engine's JSON and CSV writers
(atomic; an existing file is only replaced after asking).

The evaluation runs in its own Python process, like separations (`tasks.evaluate`); the
results as data (table rows, partial reports, box statistics) are in `evaluate_report`.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QBrush, QCloseEvent, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.stems import STEM_IDS, get_stem
from stemwright.models.zoo.catalog import DEFAULT_MODEL

from ..engine.workers import Task
from ..panels.separation import format_duration, format_eta
from ..tasks.evaluate import EvaluateTask, installed_models
from . import messages as dialogs
from .evaluate_report import (
    box_stats,
    partial_report,
    song_title,
    songs_phrase,
    table_rows,
)
from .multitrack import (
    CallTask,
    RowToggles,
    VisibleChecks,
    describe_song,
    scan,
    start_task,
)

ORACLES = (("irm1", "IRM1 (ratio mask, magnitude)"), ("irm2", "IRM2 (Wiener, power)"),
           ("ibm", "IBM (binary mask)"))
METRIC_ORDER = ("sdr", "si_sdr", "sdr_track", "sir", "sar", "isr")
COLORS = ("#4e9af1", "#f2a541", "#7ed957", "#e4572e", "#c38bf0", "#40c4c4", "#f06fa5",
          "#c9d16b")


# -- box plots -------------------------------------------------------------------------

class BoxPlot(pg.PlotWidget):
    """Box plots per stem (x) comparing systems (colour): box = quartiles, white line =
    median, whiskers to the furthest song within 1.5 IQR, dots = the songs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="#16181d")
        self.plot_item = self.getPlotItem()
        self.plot_item.showGrid(x=False, y=True, alpha=0.15)
        self.plot_item.setMenuEnabled(False)
        self.plot_item.hideButtons()
        self.legend = self.plot_item.addLegend(offset=(-10, 10), labelTextColor="#d8dee9",
                                               brush=pg.mkBrush(22, 24, 29, 200))
        for side in ("left", "bottom"):
            axis = self.plot_item.getAxis(side)
            axis.setTextPen("#aab2bf")
            axis.setPen("#596070")
        self.boxes = 0  # boxes drawn (for tests)

    def set_data(self, stems: list[str], systems: list[tuple[str, str]],
                 values: dict[str, dict[str, list[float]]], metric_title: str) -> None:
        """`values[system][stem]` are the songs' scores; `systems` is [(name, kind)]."""
        item = self.plot_item
        item.clear()
        self.legend.clear()
        self.boxes = 0
        n = max(1, len(systems))
        width = 0.8 / n
        rng = np.random.default_rng(0)
        for j, (name, kind) in enumerate(systems):
            color = QColor(COLORS[j % len(COLORS)])
            fill = QColor(color)
            fill.setAlpha(90 if kind == "model" else 45)
            xs, q1s, heights, med, whisk, points = [], [], [], [], [], ([], [])
            for i, stem in enumerate(stems):
                data = values.get(name, {}).get(stem, [])
                stats = box_stats(data)
                if stats is None:
                    continue
                x = i + (j - (n - 1) / 2) * width
                half = 0.4 * width
                xs.append(x)
                q1s.append(stats["q1"])
                heights.append(max(stats["q3"] - stats["q1"], 1e-3))
                med += [(x - half, stats["median"]), (x + half, stats["median"])]
                whisk += [(x, stats["q1"]), (x, stats["lo"]), (x, stats["q3"]), (x, stats["hi"]),
                          (x - half / 2, stats["lo"]), (x + half / 2, stats["lo"]),
                          (x - half / 2, stats["hi"]), (x + half / 2, stats["hi"])]
                finite = [v for v in data if v is not None and math.isfinite(v)]
                points[0].extend(x + rng.uniform(-half / 2, half / 2, len(finite)))
                points[1].extend(finite)
                self.boxes += 1
            pen = pg.mkPen(color, width=1.5, style=Qt.PenStyle.SolidLine if kind == "model"
                           else Qt.PenStyle.DashLine)
            label = f"{name} (oracle)" if kind == "oracle" else name
            bars = pg.BarGraphItem(x=np.array(xs), y0=np.array(q1s), height=np.array(heights),
                                   width=0.8 * width, brush=pg.mkBrush(fill), pen=pen,
                                   name=label)
            item.addItem(bars)
            if med:
                m = np.array(med)
                item.addItem(pg.PlotCurveItem(m[:, 0], m[:, 1], connect="pairs",
                                              pen=pg.mkPen("#ffffff", width=2)))
                w = np.array(whisk)
                item.addItem(pg.PlotCurveItem(w[:, 0], w[:, 1], connect="pairs",
                                              pen=pg.mkPen(color, width=1)))
                item.addItem(pg.ScatterPlotItem(points[0], points[1], size=5,
                                                pen=pg.mkPen(None),
                                                brush=pg.mkBrush(color.lighter(130))))
        axis = item.getAxis("bottom")
        axis.setTicks([[(i, get_stem(s).name) for i, s in enumerate(stems)], []])
        item.setLabel("left", f"{metric_title} (dB)", color="#aab2bf")
        item.setXRange(-0.6, max(len(stems), 1) - 0.4, padding=0)
        item.enableAutoRange(axis="y")


# -- the dialog ------------------------------------------------------------------------

class EvaluateDialog(QDialog):
    """Folder, models and oracles on the left; progress, table, box plots and notes on the
    right (see the module docstring)."""

    evaluationFinished = Signal(object)  # noqa: N815 - the report, or None (failed/cancelled)
    scanned = Signal()

    def __init__(self, parent: QWidget | None = None, settings: Any = None,
                 in_process: bool | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.in_process = in_process
        self.scan: Any = None
        self.scan_task: Task | None = None
        self.task: EvaluateTask | None = None
        self.export_task: Task | None = None
        self.songs: list[Any] = []  # SongResults, as they finish
        self._last_message = ""  # the last failure reported while running
        self._last_progress: tuple[float, Any] = (0.0, None)
        self._captions: list[str] = []  # per tab
        self.report: Any = None  # the finished report (or what was done when cancelled)
        self.run_settings: dict[str, Any] = {}
        self.setWindowTitle("Evaluate models and oracles")
        self.resize(1180, 760)
        self._build()
        self._restore()
        self._empty_table()
        self._update_buttons()

    # -- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        setup = QWidget()
        left = QVBoxLayout(setup)
        left.setContentsMargins(0, 0, 6, 0)
        songs_box = QGroupBox("Songs")
        self.setup_boxes = [songs_box]
        sl = QVBoxLayout(songs_box)
        row = QHBoxLayout()
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("A folder of multitrack songs")
        self.folder_edit.editingFinished.connect(lambda: self.set_folder(
            self.folder_edit.text()))
        browse = QPushButton("Browse\u2026")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        sl.addLayout(row)
        self.songs_label = QLabel("Choose a folder: each song is a folder of instrument "
                                  "tracks or stems (MUSDB18, Slakh, MedleyDB...).")
        self.songs_label.setWordWrap(True)
        sl.addWidget(self.songs_label)
        left.addWidget(songs_box)

        systems = QGroupBox("Systems")
        self.setup_boxes.append(systems)
        form = QVBoxLayout(systems)
        form.addWidget(QLabel("Models (installed)"))
        self.model_list = QListWidget()
        self.model_list.setMaximumHeight(170)
        self.check_style = VisibleChecks()  # kept: widgets do not own their style
        self.model_list.setStyle(self.check_style)
        self.model_list.setToolTip("Click a model to tick or untick it")
        self.row_toggles = RowToggles(self.model_list)
        for title, name in installed_models():
            item = QListWidgetItem(f"{title}  [{name}]")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.model_list.addItem(item)
        self.model_list.itemChanged.connect(lambda _i: self._systems_changed())
        form.addWidget(self.model_list)
        form.addWidget(QLabel("Oracles (upper bounds: masks from the true stems)"))
        self.oracle_checks: dict[str, QCheckBox] = {}
        for name, title in ORACLES:
            check = QCheckBox(title)
            check.setStyle(self.check_style)
            check.toggled.connect(lambda _on: self._systems_changed())
            self.oracle_checks[name] = check
            form.addWidget(check)
        left.addWidget(systems)

        options = QGroupBox("Options")
        self.setup_boxes.append(options)
        of = QFormLayout(options)
        self.procedure = QComboBox()
        for label, value in (("Adaptive rescaling (default)", "adaptive"),
                             ("Summing", "summing"), ("Averaging", "averaging"),
                             ("Scaling", "scaling")):
            self.procedure.addItem(label, value)
        of.addRow("Mixdown", self.procedure)
        self.device = QComboBox()
        self.device.addItem("Automatic", "auto")
        self.device.addItem("CPU", "cpu")
        of.addRow("Device", self.device)
        left.addWidget(options)

        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        left.addLayout(run_row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(12)
        left.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        left.addWidget(self.status)
        left.addStretch(1)

        results = QWidget()
        right = QVBoxLayout(results)
        right.setContentsMargins(6, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Metric"))
        self.metric_combo = QComboBox()
        from stemwright.models.evaluation.evaluate import METRIC_TITLES

        for key in METRIC_ORDER:
            self.metric_combo.addItem(METRIC_TITLES[key], key)
        self.metric_combo.currentIndexChanged.connect(lambda _i: self.refresh())
        top.addWidget(self.metric_combo)
        top.addStretch(1)
        self.json_button = QPushButton("Export JSON\u2026")
        self.json_button.clicked.connect(lambda: self.export("json"))
        self.csv_button = QPushButton("Export CSV\u2026")
        self.csv_button.clicked.connect(lambda: self.export("csv"))
        top.addWidget(self.json_button)
        top.addWidget(self.csv_button)
        right.addLayout(top)
        self.tabs = QTabWidget()
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Song", "Stem"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(False)
        self.placeholder = QLabel("No scores yet. Choose a folder of multitrack songs and "
                                  "the systems to compare, then press Run: the scores fill "
                                  "in here song by song.", self.table.viewport())
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #8b93a1; padding: 24px")
        self.table.viewport().installEventFilter(self)
        self.tabs.addTab(self.table, "Table")
        self.box_plot = BoxPlot()
        self.tabs.addTab(self.box_plot, "Box plots")
        self.notes = QPlainTextEdit()
        self.notes.setReadOnly(True)
        self.tabs.addTab(self.notes, "Notes")
        right.addWidget(self.tabs, 1)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setMinimumHeight(3 * self.caption.fontMetrics().lineSpacing() + 6)
        self.caption.setStyleSheet("color: #8b93a1")
        right.addWidget(self.caption)
        self.tabs.currentChanged.connect(lambda _i: self._show_caption())

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(setup)
        split.addWidget(results)
        split.setSizes([340, 840])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(split)

    def current_model(self) -> str:
        """The model chosen in the Separation panel (remembered in the settings), or the
        default model."""

        if self.settings is None:
            return DEFAULT_MODEL
        return str(self.settings.model(DEFAULT_MODEL))

    def _restore(self) -> None:
        """Tick the current model and the IRM2 oracle, or what the last run used (plus
        the current model when another one was chosen since)."""
        current = self.current_model()
        names = {current, "irm2"}
        if self.settings is not None:
            chosen = self.settings.value("evaluate/systems", "", str)
            if chosen:
                names = set(chosen.split(","))
                if self.settings.value("evaluate/current_model", "", str) != current:
                    names.add(current)  # a model chosen in the panel since
        self.set_systems([n for n in names if n not in self.oracle_checks],
                         [n for n in names if n in self.oracle_checks])
        if self.settings is None:
            return
        folder = self.settings.value("evaluate/folder", "", str)
        if folder and Path(folder).is_dir():
            self.set_folder(folder)

    # -- folder -----------------------------------------------------------------------
    def folder(self) -> str:
        """The folder typed or chosen ("" when none)."""
        return self.folder_edit.text().strip()

    def _browse(self) -> None:
        start = self.folder() or (self.settings.last_folder() if self.settings else "")
        folder = QFileDialog.getExistingDirectory(self, "A folder of multitrack songs", start)
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str | os.PathLike[str]) -> None:
        """Use `folder` and scan it in the background."""
        folder = str(folder)
        if self.scan is not None and str(self.scan.root) == folder and \
                self.folder_edit.text() == folder:
            return
        self.folder_edit.setText(folder)
        self.scan = None
        if self.scan_task is not None:
            self.scan_task.cancel()
        if not folder:
            self._update_buttons()
            return
        task = CallTask(scan, folder, title="Scanning")
        self.scan_task = task
        task.succeeded.connect(lambda s, t=task: self._scanned(t, s))
        task.failed.connect(lambda exc, t=task: self._scan_failed(t, exc))
        self.songs_label.setText(f"Looking for songs in {folder}\u2026")
        self.songs_label.setStyleSheet("")
        start_task(task)
        self._update_buttons()

    def _scanned(self, task: Task, result: Any) -> None:
        if task is not self.scan_task:
            return
        self.scan_task = None
        self.scan = result
        total = sum(s.duration for s in result.songs)
        n = len(result.songs)
        lines = [f"{n} song{'s' if n != 1 else ''}, {format_duration(total)} in all"]
        lines += [f"\u2022 {s.name}: {describe_song(s)}" for s in result.songs[:6]]
        if n > 6:
            lines.append(f"\u2022 \u2026 and {n - 6} more")
        if result.problems:
            lines.append(f"\u26a0 {len(result.problems)} problem(s): see Notes after a run")
        self.songs_label.setText("\n".join(lines))
        if self.settings is not None:
            self.settings.set_value("evaluate/folder", str(result.root))
        self._update_buttons()
        self.scanned.emit()

    def _scan_failed(self, task: Task, exc: BaseException) -> None:
        if task is not self.scan_task:
            return
        self.scan_task = None
        self.songs_label.setText(str(exc))
        self.songs_label.setStyleSheet("color: #f08a7e")
        self._update_buttons()
        self.scanned.emit()

    # -- systems ----------------------------------------------------------------------
    def chosen_models(self) -> list[str]:
        """The ticked models' zoo names."""
        return [self.model_list.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(self.model_list.count())
                if self.model_list.item(i).checkState() == Qt.CheckState.Checked]

    def chosen_oracles(self) -> list[str]:
        """The ticked oracles ("irm1", "irm2", "ibm")."""
        return [n for n, c in self.oracle_checks.items() if c.isChecked()]

    def set_systems(self, models: list[str], oracles: list[str]) -> None:
        """Tick exactly these models and oracles."""
        for i in range(self.model_list.count()):
            item = self.model_list.item(i)
            on = item.data(Qt.ItemDataRole.UserRole) in models
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        for name, check in self.oracle_checks.items():
            check.setChecked(name in oracles)

    # -- running ----------------------------------------------------------------------
    def running(self) -> bool:
        """True while an evaluation runs."""
        return self.task is not None

    def run(self) -> EvaluateTask | None:
        """Start the evaluation of the scanned songs with the chosen systems."""
        models, oracles = self.chosen_models(), self.chosen_oracles()
        if self.scan is None or self.task is not None or not (models or oracles):
            return None
        if self.settings is not None:
            self.settings.set_value("evaluate/systems", ",".join([*models, *oracles]))
            self.settings.set_value("evaluate/current_model", self.current_model())
        self.songs, self.report = [], None
        self.run_settings = {"procedure": self.procedure.currentData(),
                             "device": self.device.currentData()}
        task = EvaluateTask(self.scan, models, oracles, self.procedure.currentData(),
                            self.device.currentData(), in_process=self.in_process)
        self.task = task
        task.progressed.connect(lambda f, eta, msg, t=task: self._progressed(t, f, eta, msg))
        task.songDone.connect(lambda s, t=task: self._song_done(t, s))
        task.succeeded.connect(lambda r, t=task: self._done(t, r))
        task.failed.connect(lambda exc, t=task: self._failed(t, exc))
        task.cancelled.connect(lambda t=task: self._cancelled(t))
        self.progress.setValue(0)
        self.status.setText(f"Evaluating {len(self.scan.songs)} songs with "
                            f"{', '.join([*models, *oracles])}\u2026")
        self.status.setStyleSheet("")
        self._last_message = ""
        self._last_progress = (0.0, None)
        start_task(task)
        self.refresh()
        self._update_buttons()
        return task

    def cancel(self) -> None:
        """Stop the evaluation (the songs finished so far stay)."""
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling\u2026")

    def _progressed(self, task: EvaluateTask, fraction: float, eta: Any, message: str) -> None:
        if task is not self.task:
            return
        self.progress.setValue(int(fraction * 1000))
        if "failed" in message:  # other messages are the songs' notes (see Notes)
            self._last_message = message
        self._last_progress = (fraction, eta)
        self._show_progress()

    def _show_progress(self) -> None:
        fraction, eta = self._last_progress
        songs = self.scan.songs if self.scan is not None else []
        done = len(self.songs)
        text = f"{fraction * 100:.0f}% \u00b7 {done} of {len(songs)} songs scored \u00b7 " \
               f"{format_eta(eta)}"
        if done < len(songs):
            text += f"\nNow: {songs[done].name}"
        if self._last_message:
            text += f"\n\u26a0 {self._last_message}"
        self.status.setText(text)

    def _song_done(self, task: EvaluateTask, song: Any) -> None:
        if task is not self.task:
            return
        self.songs.append(song)
        self._show_progress()
        self.refresh()

    def _ended(self, task: EvaluateTask) -> bool:
        if task is not self.task:
            return False
        self.task = None
        self._update_buttons()
        return True

    def _done(self, task: EvaluateTask, report: Any) -> None:
        if not self._ended(task):
            return
        self.report = report
        self.songs = list(report.songs)
        self.progress.setValue(1000)
        elapsed = time.monotonic() - task.started_at
        self.status.setText(f"Done: {songs_phrase(len(report.songs))} in "
                            f"{format_duration(elapsed)}.")
        self.refresh()
        self.evaluationFinished.emit(report)

    def _failed(self, task: EvaluateTask, exc: BaseException) -> None:
        if not self._ended(task):
            return
        self._keep_partial()
        self.status.setText(f"The evaluation failed: {exc}")
        self.status.setStyleSheet("color: #f08a7e")
        self.evaluationFinished.emit(None)
        dialogs.show_exception(self, exc, "Evaluation failed",
                               context="The songs could not all be evaluated.")

    def _cancelled(self, task: EvaluateTask) -> None:
        if not self._ended(task):
            return
        self._keep_partial()
        n = len(self.songs)
        self.status.setText(
            f"Cancelled. {songs_phrase(n)} finished before; {'its' if n == 1 else 'their'} scores "
            "are shown and can be exported." if n else "Cancelled before any song was finished.")
        self.evaluationFinished.emit(None)

    def _keep_partial(self) -> None:
        self.report = (partial_report(str(self.scan.root) if self.scan else "", self.songs,
                                      self.run_settings) if self.songs else None)
        self.refresh()

    def current_report(self) -> Any:
        """The report shown: the finished one, or the songs finished so far."""
        if self.report is not None:
            return self.report
        if self.songs:
            return partial_report(str(self.scan.root) if self.scan else "", self.songs,
                                  self.run_settings)
        return None

    # -- results ----------------------------------------------------------------------
    def metric_key(self) -> str:
        """The metric shown ("sdr", "si_sdr", ...)."""
        return str(self.metric_combo.currentData())

    def refresh(self) -> None:
        """Redraw the table, the box plots and the notes for the chosen metric."""
        report = self.current_report()
        self._fill_table(report)
        self._fill_plot(report)
        self._fill_notes(report)
        self._update_buttons()

    def _fill_table(self, report: Any) -> None:
        from stemwright.models.evaluation.evaluate import METRIC_TITLES

        table = self.table
        table.setRowCount(0)
        metric = self.metric_key()
        if report is None:
            self._empty_table()
            return
        self.placeholder.hide()
        systems = report.systems
        headers = ["Song", "Stem"] + [f"{s.name}\n(oracle)" if s.kind == "oracle"
                                      else s.name for s in systems]
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        rows = table_rows(report, metric)
        table.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        light = table.palette().base().color().lightness() > 128  # the theme's table
        summary_bg = QColor("#dde5f0" if light else "#262b36")
        best_fg = QColor("#1b7f35" if light else "#7ed957")
        for r, (song, stem, values, is_summary, tip, comparable) in enumerate(rows):
            finite = [v for v in values if math.isfinite(v)]
            best = max(finite) if len(finite) > 1 and comparable else None
            cells = [song, stem] + [f"{v:.2f}" if math.isfinite(v) else "\u2013"
                                    for v in values]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if tip:
                    item.setToolTip(tip)
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                    v = values[c - 2]
                    if best is not None and math.isfinite(v) and v == best:
                        item.setForeground(QBrush(best_fg))
                if is_summary:
                    item.setFont(bold)
                    item.setBackground(QBrush(summary_bg))
                table.setItem(r, c, item)
        header = table.horizontalHeader()
        header.setMinimumSectionSize(76)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        done = len(report.songs)
        total = len(self.scan.songs) if self.scan is not None else done
        partial = "" if self.report is not None and self.task is None and done >= total \
            else f" \u2014 {done} of {total} songs so far"
        self._captions = [
            f"{METRIC_TITLES[metric]} in dB, higher is better{partial}. BSS Eval v4 metrics "
            "are medians over 1 s windows; the summary rows are medians over the songs and "
            "their mean over the stems. Green: best system in the row, only where every "
            "system is scored on the same stems. Oracles read the true stems: upper bounds "
            "for mask-based models."
            + (" *: stems scored together, or means over different stems, where the systems "
               "separate different stems: not compared (hover for details)."
               if any(r[1].endswith(" *") for r in rows) else ""),
            f"{METRIC_TITLES[metric]} in dB of each song{partial}, per stem and system: the box "
            "spans the middle half of the songs, the white line is the median, the whiskers "
            "reach the furthest song within 1.5 box heights, dots are the songs. Oracles "
            "(dashed) read the true stems: upper bounds for mask-based models.",
            "What happened while mixing, separating and scoring each song."]
        self._show_caption()

    def _empty_table(self) -> None:
        """No scores yet: the columns the run will fill, and a word on what to do."""
        table = self.table
        headers = ["Song", "Stem", *self.chosen_models(),
                   *(f"{n}\n(oracle)" for n in self.chosen_oracles())]
        table.setRowCount(0)
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        header = table.horizontalHeader()
        header.setMinimumSectionSize(76)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self._captions = []
        self.caption.setText("")
        self.placeholder.show()
        self._place_placeholder()

    def _place_placeholder(self) -> None:
        self.placeholder.setGeometry(self.table.viewport().rect())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self._place_placeholder()
        return super().eventFilter(watched, event)

    def _systems_changed(self) -> None:
        if self.current_report() is None and hasattr(self, "placeholder"):
            self._empty_table()
        self._update_buttons()

    def _show_caption(self) -> None:
        index = self.tabs.currentIndex()
        self.caption.setText(self._captions[index] if 0 <= index < len(self._captions) else "")

    def _fill_plot(self, report: Any) -> None:
        from stemwright.models.evaluation.evaluate import METRIC_TITLES

        metric = self.metric_key()
        if report is None:
            self.box_plot.set_data([], [], {}, METRIC_TITLES[metric])
            return
        systems = [(s.name, s.kind) for s in report.systems]
        values: dict[str, dict[str, list[float]]] = {}
        for song in report.songs:
            for name, stems in song.scores.items():
                for stem, score in stems.items():
                    values.setdefault(name, {}).setdefault(stem, []).append(
                        getattr(score, metric))
        stems = [s for s in STEM_IDS if any(s in v for v in values.values())]
        self.box_plot.set_data(stems, systems, values, METRIC_TITLES[metric])

    def _fill_notes(self, report: Any) -> None:
        if report is None:
            self.notes.setPlainText("")
            return
        lines = []
        if report.problems:
            lines.append("Folder:")
            lines += [f"  \u26a0 {p}" for p in report.problems]
        for song in report.songs:
            present = ", ".join(get_stem(x).name.lower() for x in song.present) or "none"
            lines.append(f"{song_title(song)}  ({song.duration:.1f} s, {song.samplerate} Hz, "
                         f"stems: {present}; mixture: {song.mixture_source})")
            for name, seconds in song.seconds.items():
                lines.append(f"  {name}: separated in {seconds:.1f} s")
            for name, why in song.errors.items():
                lines.append(f"  \u26a0 {name} failed: {why}")
            lines += [f"  {n}" for n in song.notes]
        self.notes.setPlainText("\n".join(lines))

    # -- export -----------------------------------------------------------------------
    def confirm(self, title: str, text: str) -> bool:
        """Ask a yes/no question (tests replace this)."""
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def export(self, kind: str, path: str | os.PathLike[str] | None = None) -> Task | None:
        """Save the report as JSON or CSV (asks for a file when `path` is None; asks before
        replacing an existing file); written atomically on a worker thread."""
        report = self.current_report()
        if report is None or self.export_task is not None:
            return None
        if path is None:
            start = self.folder() or ""
            suggestion = str(Path(start) / f"evaluation.{kind}") if start else \
                f"evaluation.{kind}"
            chosen, _ = QFileDialog.getSaveFileName(
                self, f"Export the report as {kind.upper()}", suggestion,
                f"{kind.upper()} files (*.{kind});;All files (*)",
                options=QFileDialog.Option.DontConfirmOverwrite)
            if not chosen:
                return None
            path = chosen
        path = Path(path)
        if path.suffix.lower() != f".{kind}":
            path = path.with_name(path.name + f".{kind}")
        if path.exists() and not self.confirm(
                "Replace the file?", f"{path.name} already exists in {path.parent}. "
                "Replace it?"):
            return None
        from stemwright.models.evaluation.evaluate import write_csv, write_json

        writer = write_json if kind == "json" else write_csv
        task = CallTask(writer, report, path, title="Saving the report")
        self.export_task = task
        task.succeeded.connect(lambda p: self.status.setText(f"Saved {p}"))
        task.failed.connect(lambda exc: dialogs.show_exception(
            self, exc, "Export failed", context=f"{path.name} could not be written."))
        task.finished.connect(lambda t=task: self._export_ended(t))
        start_task(task)
        self._update_buttons()
        return task

    def _export_ended(self, task: Task) -> None:
        if self.export_task is task:
            self.export_task = None
            self._update_buttons()

    # -- state ------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        running = self.task is not None
        has_systems = bool(self.chosen_models() or self.chosen_oracles()) \
            if hasattr(self, "oracle_checks") else False
        self.run_button.setEnabled(not running and self.scan is not None and has_systems)
        for box in self.setup_boxes:  # what runs is what the boxes say
            box.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        has_report = self.current_report() is not None
        for button in (self.json_button, self.csv_button):
            button.setEnabled(has_report and not running and self.export_task is None)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop whatever runs (the window is closing)."""
        for task in (self.task, self.scan_task, self.export_task):
            if task is not None:
                task.stop_and_wait(timeout_ms)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.task is not None:
            if not self.confirm("Stop the evaluation?", "The evaluation is still running. "
                                "Stop it? The songs finished so far stay in the table."):
                event.ignore()
                return
            self.task.cancel()
        super().closeEvent(event)


__all__ = ["EvaluateDialog", "BoxPlot"]
