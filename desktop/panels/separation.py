"""The separation panel: model and device, advanced chunking, Separate/Cancel, progress
with an ETA, and downloading models that are not installed yet (with progress).

The panel emits `separateRequested(SeparationOptions)`; the main window runs the job and
feeds progress back through `set_progress`. Downloads are run by the panel itself.
"""

from __future__ import annotations

import html
import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.separation.devices import available_devices
from stemwright.models.stems import get_stem
from stemwright.models.zoo import catalog as zoo
from stemwright.models.zoo import recipes

from ..dialogs import messages as dialogs
from ..dialogs.recipe_builder import RecipeBuilderDialog, recipe_tooltip
from ..engine.workers import DownloadTask, SeparationOptions


def format_duration(seconds: float) -> str:
    """12 s, 1:05, 1:02:03."""
    seconds = max(0, int(math.ceil(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_eta(eta: float | None) -> str:
    """"about 1:05 left" (or "" when unknown)."""
    if eta is None or not math.isfinite(eta):
        return "estimating time left"
    if eta < 1.5:
        return "almost done"
    return f"about {format_duration(eta)} left"


def device_label(device: str) -> str:
    if device == "auto":
        return "Automatic (fastest available)"
    if device == "cpu":
        return "CPU"
    if device.startswith("cuda"):
        try:
            import torch
            index = int(device.split(":")[1]) if ":" in device else 0
            return f"GPU {index}: {torch.cuda.get_device_name(index)}"
        except Exception:  # noqa: BLE001 - a label must never fail
            return device.upper()
    if device == "mps":
        return "Apple GPU (MPS)"
    return device


class SeparationPanel(QWidget):
    """Model/device choice and the Separate button, with progress."""

    separateRequested = Signal(object)  # SeparationOptions
    cancelRequested = Signal()
    modelChanged = Signal(str)
    modelsChanged = Signal()  # a model was downloaded
    restoreRequested = Signal()  # bring back the stems of an earlier separation

    def __init__(self, settings=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.download_task: DownloadTask | None = None
        self._busy = ""  # "" | "separating"
        self._song_loaded = False
        self.setMinimumWidth(270)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

        self.model_combo = QComboBox()
        self.model_combo.setToolTip("Separation model")
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_info.setTextFormat(Qt.TextFormat.RichText)
        self.model_info.setStyleSheet("color: #aab2bf")
        self.new_recipe_button = QToolButton()
        self.new_recipe_button.setText("New ensemble or recipe\u2026")
        self.new_recipe_button.setAutoRaise(True)
        self.new_recipe_button.setToolTip("Combine installed models into an ensemble, or "
                                          "pick a model per stem (a recipe)")
        self.new_recipe_button.clicked.connect(self.new_recipe)
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip("Download this model's weights (needs internet once)")
        self.download_button.clicked.connect(self.start_download)

        self.device_combo = QComboBox()
        self.device_combo.setToolTip("Where the model runs")
        try:
            devices = available_devices()
        except Exception:  # noqa: BLE001 - torch trouble must not hide the panel
            devices = ["auto", "cpu"]
        for device in devices:
            self.device_combo.addItem(device_label(device), device)

        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setAutoRaise(True)
        self.advanced_button.toggled.connect(self._toggle_advanced)
        self.segment_spin = QDoubleSpinBox()
        self.segment_spin.setRange(0.0, 60.0)
        self.segment_spin.setSingleStep(0.5)
        self.segment_spin.setDecimals(1)
        self.segment_spin.setSuffix(" s")
        self.segment_spin.setSpecialValueText("Model default")
        self.segment_spin.setToolTip("Length of the chunks the model sees at once. Shorter "
                                     "uses less memory; some models have a maximum.")
        self.overlap_spin = QDoubleSpinBox()
        self.overlap_spin.setRange(-0.05, 0.9)
        self.overlap_spin.setSingleStep(0.05)
        self.overlap_spin.setDecimals(2)
        self.overlap_spin.setSpecialValueText("Model default")
        self.overlap_spin.setToolTip("How much consecutive chunks overlap (0 to 0.9). More "
                                     "overlap smooths chunk borders but takes longer.")
        self.advanced = QWidget()
        adv_form = QFormLayout(self.advanced)
        adv_form.setContentsMargins(12, 0, 0, 0)
        adv_form.addRow("Segment", self.segment_spin)
        adv_form.addRow("Overlap", self.overlap_spin)
        self.advanced.setVisible(False)

        self.separate_button = QPushButton("Separate")
        self.separate_button.setDefault(True)
        self.separate_button.setMinimumHeight(32)
        self.separate_button.setStyleSheet(
            "QPushButton { background: #2f6fd0; color: white; font-weight: 600; "
            "border-radius: 4px; padding: 4px 14px; }"
            "QPushButton:disabled { background: #3a3f4a; color: #8b93a1; }")
        self.separate_button.clicked.connect(self._separate_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setMinimumHeight(32)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._cancel_clicked)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.restore_button = QPushButton("Restore earlier stems")
        self.restore_button.setToolTip("This song was separated before: bring its stems "
                                       "back at once instead of separating again")
        self.restore_button.setVisible(False)
        self.restore_button.clicked.connect(self.restoreRequested)
        self.status = QLabel("Open a song to separate it.")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #aab2bf")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Model", self.model_combo)
        form.addRow("", self.new_recipe_button)
        form.addRow("", self.model_info)
        form.addRow("", self.download_button)
        form.addRow("Device", self.device_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.separate_button, 1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addLayout(form)
        layout.addWidget(self.advanced_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.advanced)
        layout.addSpacing(6)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.restore_button)
        layout.addStretch(1)

        self.refresh_models()
        self._restore()

    # -- models -----------------------------------------------------------------------
    def refresh_models(self) -> None:
        """(Re)fill the model list from the zoo, marking those still to download."""
        current = self.current_model() if self.model_combo.count() else None
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        try:
            entries = zoo.list_models()
        except Exception as exc:  # noqa: BLE001 - show what we can
            entries = []
            self.status.setText(f"Could not list models: {exc}")
        models = [e for e in entries if e.family != recipes.FAMILY]
        recipe_entries = [e for e in entries if e.family == recipes.FAMILY]
        for entry in models + recipe_entries:
            label = entry.title
            if entry.family == recipes.FAMILY:
                if entry is recipe_entries[0] and models:
                    self.model_combo.insertSeparator(self.model_combo.count())
                if "recipe" not in label.lower():
                    label += "  (recipe)"
            if entry.needs_download and not _installed(entry.name):
                label += f"  (download {entry.size_mb:.0f} MB)"
            self.model_combo.addItem(label, entry.name)
            if entry.family == recipes.FAMILY:
                self.model_combo.setItemData(self.model_combo.count() - 1,
                                             recipe_tooltip(entry.name),
                                             Qt.ItemDataRole.ToolTipRole)
        index = self.model_combo.findData(current or zoo.DEFAULT_MODEL)
        self.model_combo.setCurrentIndex(max(0, index))
        self.model_combo.blockSignals(False)
        self._model_changed()

    def new_recipe(self) -> str | None:
        """Open the ensemble / recipe builder; select what it saved (its name)."""
        dialog = RecipeBuilderDialog(self.window())
        if dialog.exec() != RecipeBuilderDialog.DialogCode.Accepted or not dialog.saved_name:
            return None
        self.refresh_models()
        self.set_model(dialog.saved_name)
        self.modelsChanged.emit()
        return dialog.saved_name

    def current_model(self) -> str:
        return str(self.model_combo.currentData() or zoo.DEFAULT_MODEL)

    def set_model(self, name: str) -> None:
        index = self.model_combo.findData(name)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)

    def current_entry(self):
        try:
            return zoo.get_entry(self.current_model())
        except Exception:  # noqa: BLE001
            return None

    def model_ready(self) -> bool:
        """True when the chosen model can run now (installed, or needs no files)."""
        entry = self.current_entry()
        return entry is not None and (not entry.needs_download or _installed(entry.name))

    def _model_changed(self, *_args) -> None:
        entry = self.current_entry()
        if entry is None:
            self.model_info.setText("")
            self.download_button.setVisible(False)
            return
        produced = ", ".join(get_stem(s).name for s in entry.mapping.produced)
        missing = ", ".join(get_stem(s).name for s in entry.mapping.unavailable)
        lines = [f"<b>{len(entry.mapping.produced)} stems:</b> {produced}"]
        if missing:
            lines.append(f"<span style='color:#7d8594'>Not produced: {missing}</span>")
        lines.append(html.escape(entry.description))  # a recipe's says "vocals <- model"
        size = f"{entry.size_mb:.0f} MB, " if entry.size_mb else ""
        lines.append(f"<span style='color:#7d8594'>{size}{html.escape(entry.licence)}</span>")
        self.model_info.setText("<br>".join(lines))
        needs = entry.needs_download and not _installed(entry.name)
        self.download_button.setVisible(needs)
        self.download_button.setText(f"Download {entry.title} ({entry.size_mb:.0f} MB)")
        if self.settings is not None:
            self.settings.set_model(entry.name)
        self._update_enabled()
        self.modelChanged.emit(entry.name)

    # -- options ----------------------------------------------------------------------
    def options(self) -> SeparationOptions:
        """The user's current choices."""
        segment = self.segment_spin.value()
        overlap = self.overlap_spin.value()
        return SeparationOptions(
            model=self.current_model(),
            device=str(self.device_combo.currentData() or "auto"),
            segment=segment if segment > 0 else None,
            overlap=overlap if overlap >= 0 else None)

    def _restore(self) -> None:
        if self.settings is None:
            return
        self.set_model(self.settings.model(zoo.DEFAULT_MODEL))
        index = self.device_combo.findData(self.settings.device())
        if index >= 0:
            self.device_combo.setCurrentIndex(index)
        self.segment_spin.setValue(self.settings.segment())
        self.overlap_spin.setValue(self.settings.overlap())
        self.device_combo.currentIndexChanged.connect(
            lambda _i: self.settings.set_device(str(self.device_combo.currentData())))
        self.segment_spin.valueChanged.connect(self.settings.set_segment)
        self.overlap_spin.valueChanged.connect(self.settings.set_overlap)

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on
                                          else Qt.ArrowType.RightArrow)

    # -- state ------------------------------------------------------------------------
    def set_song_loaded(self, loaded: bool) -> None:
        self._song_loaded = loaded
        if not self._busy and not self.downloading():
            self.status.setText("Ready to separate." if loaded
                                else "Open a song to separate it.")
            self.progress.setValue(0)
            self.progress.setFormat("")
        self._update_enabled()

    def offer_restore(self, text: str | None) -> None:
        """Show (text) or hide (None) the button that restores earlier stems."""
        self.restore_button.setVisible(bool(text))
        if text:
            self.restore_button.setText(text)

    def downloading(self) -> bool:
        return self.download_task is not None

    def busy(self) -> bool:
        return bool(self._busy) or self.downloading()

    def set_separating(self, on: bool) -> None:
        """Lock the choices while a separation runs (Cancel stays available)."""
        self._busy = "separating" if on else ""
        if on:
            self.progress.setValue(0)
            self.progress.setFormat("Starting...")
            self.status.setText("Separating...")
        self._update_enabled()

    def _update_enabled(self) -> None:
        busy = self.busy()
        for w in (self.model_combo, self.new_recipe_button, self.device_combo,
                  self.segment_spin, self.overlap_spin):
            w.setEnabled(not busy)
        self.download_button.setEnabled(not busy)
        self.restore_button.setEnabled(not busy)
        self.separate_button.setEnabled(self._song_loaded and not busy and self.model_ready())
        self.cancel_button.setEnabled(busy)
        if self._song_loaded and not busy and not self.model_ready():
            self.separate_button.setToolTip("Download the model first")
        else:
            self.separate_button.setToolTip("Separate the song into stems (Ctrl+R)")

    def set_progress(self, fraction: float, eta: float | None, message: str = "") -> None:
        """Show progress of the running job."""
        self.progress.setValue(int(round(fraction * 1000)))
        pct = f"{fraction * 100:.0f}%"
        self.progress.setFormat(f"{pct}  \u00b7  {format_eta(eta)}" if 0 < fraction < 1
                                else pct)
        if message:
            self.status.setText(message)

    def finish(self, text: str, fraction: float | None = None) -> None:
        """Back to idle with a summary line."""
        self._busy = ""
        if fraction is not None:
            self.progress.setValue(int(round(fraction * 1000)))
            self.progress.setFormat(f"{fraction * 100:.0f}%")
        self.status.setText(text)
        self._update_enabled()

    def _separate_clicked(self) -> None:
        if self.separate_button.isEnabled():
            self.separateRequested.emit(self.options())

    def _cancel_clicked(self) -> None:
        if self.download_task is not None:
            self.download_task.cancel()
            self.status.setText("Cancelling download...")
        if self._busy:
            self.status.setText("Cancelling...")
            self.cancelRequested.emit()

    # -- downloads --------------------------------------------------------------------
    def start_download(self) -> None:
        """Download the selected model in the background."""
        entry = self.current_entry()
        if entry is None or self.busy():
            return
        task = DownloadTask(entry.name, self)
        task.progressed.connect(self.set_progress)
        task.succeeded.connect(lambda _r, n=entry.title: self._download_done(n))
        task.failed.connect(self._download_failed)
        task.cancelled.connect(lambda: self._download_ended("Download cancelled."))
        task.finished.connect(task.deleteLater)
        self.download_task = task
        self.status.setText(f"Downloading {entry.title}...")
        self.progress.setValue(0)
        self.progress.setFormat("Connecting...")
        self._update_enabled()
        task.start()

    def _download_ended(self, text: str) -> None:
        self.download_task = None
        self.finish(text)

    def _download_done(self, title: str) -> None:
        self._download_ended(f"{title} is installed.")
        self.progress.setValue(1000)
        self.progress.setFormat("100%")
        self.refresh_models()
        self.modelsChanged.emit()

    def _download_failed(self, exc: BaseException) -> None:
        self._download_ended("Download failed.")
        self.progress.setValue(0)
        self.progress.setFormat("")
        dialogs.show_exception(self.window(), exc, "Download failed",
                               context="The model could not be downloaded.")

    def shutdown(self) -> None:
        """Stop a running download (window closing)."""
        if self.download_task is not None:
            self.download_task.stop_and_wait()


def _installed(name: str) -> bool:
    try:
        return zoo.is_installed(name)
    except Exception:  # noqa: BLE001
        return False
