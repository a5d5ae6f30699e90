"""The export dialog: stems, the remix, "song minus X" or a REAPER project, in one place.

Every mode shares the file options (WAV/FLAC with a bit depth, or MP3/M4A/Opus with a
bitrate, MP3 also VBR; sample rate, folder, naming pattern with a live preview), all
remembered in the settings. The export runs on a worker thread (`workers.Task`) behind
a progress dialog with Cancel; existing files are only replaced after the user agreed in
a question box, and the engine writes through temporary files, so a cancel or an error
never leaves partial files behind. A remix that would clip (peak above 0 dBFS, measured on
a worker thread first, `export_remix`) is only written after the user chose to normalise
it or not. File names: {model} in the pattern and the copy of the original mix next to
the stems are in `export_naming`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.audio.io import LOSSY_FORMATS, OUTPUT_FORMATS, SAVE_FORMATS
from stemwright.models.errors import StemwrightError
from stemwright.models.remix.ardour import (
    SESSION_FORMATS,
    export_ardour_session,
    session_folder,
)
from stemwright.models.remix.export import (
    DEFAULT_PATTERN,
    export_daw_session,
    export_remix,
    export_song_minus,
    export_stems,
    minus_label,
    project_filename,
    remix_filename,
    safe_filename,
    stem_filename,
)
from stemwright.models.remix.mixer import MixerState, format_db, gain_to_db
from stemwright.models.remix.nistems import check_ni_stem_ids, export_ni_stems
from stemwright.models.stems import STEM_IDS, get_stem

from ..engine.workers import Task
from .export_naming import (
    MODEL_PATTERN,
    PATTERN_TOOLTIP,
    PREVIEW_LINES,
    html,
    mix_target,
    overwrite_question,
    pattern_with_model,
    preview_html,
    with_mix_copy,
)
from .export_remix import (
    NORMALIZE_PEAK_DB,
    PeakTask,
    ask_clipping,
    mixer_summary,
    normalized_state,
)
from .messages import show_exception
from .ni_stems_options import NIStemsOptions

__all__ = ["ExportDialog", "ExportJob", "ExportTask", "NORMALIZE_PEAK_DB", "PeakTask",
           "mixer_summary", "normalized_state"]

MODES = ("stems", "remix", "minus", "daw", "nistems")
MODE_TITLES = {"stems": "Stems", "remix": "Remix", "minus": "Song minus…",
               "daw": "DAW project", "nistems": "NI Stems (DJ)"}
#: the AAC bitrate of NI Stems files (ALAC, lossless, is the other choice below)
NI_STEMS_KBPS = 256
SAMPLE_RATES = (22050, 32000, 44100, 48000, 88200, 96000)
BIT_DEPTH_NAMES = {16: "16-bit", 24: "24-bit", 32: "32-bit float"}
#: MP3's VBR choices in the bitrate menu (LAME -V quality: typical bitrate)
MP3_VBR_CHOICES = {0: "VBR V0 (~245 kbit/s)", 2: "VBR V2 (~190 kbit/s)",
                   4: "VBR V4 (~165 kbit/s)"}


@dataclass
class ExportJob:
    """What one press of Export writes: the target files and the call that writes them."""

    mode: str
    targets: list[Path]
    run: Callable[..., object]  # run(overwrite=..., progress=..., cancel=...)
    copied: Path | None = None  # the original mix copied next to the stems (last target)


class ExportTask(Task):
    """Runs an `ExportJob` on a worker thread; succeeds with the list of written paths."""

    title = "Export"

    def __init__(self, job: ExportJob, overwrite: bool, parent=None) -> None:
        super().__init__(parent)
        self.job = job
        self.overwrite = overwrite

    def work(self) -> list[Path]:
        result = self.job.run(overwrite=self.overwrite, progress=self.report,
                              cancel=self.is_cancelled)
        return list(result) if isinstance(result, list) else [Path(result)]


class ExportDialog(QDialog):
    """Export stems / remix / song minus X / REAPER project with progress and cancel."""

    #: emitted with the written paths after a successful export
    exported = Signal(list)

    def __init__(self, parent: QWidget | None, stems: dict[str, np.ndarray], samplerate: int,
                 song_name: str, mixer_state: MixerState,
                 settings: QSettings | None = None, bpm: float | None = None,
                 artist: str | None = None, model: str | None = None,
                 song_path: str | Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export — {song_name}")
        self.stems = {s: stems[s] for s in STEM_IDS if s in stems}
        self.samplerate = int(samplerate)
        self.song = song_name
        self.mixer_state = mixer_state
        self.bpm = bpm  # the song's tempo for the REAPER project; None when unknown
        self.artist = artist  # tagged in the files when known
        self.model = model  # the model that made the stems: a pattern's {model}
        # the song's own file, copied next to the stems when asked (None: not from a file)
        self.song_path = Path(song_path) if song_path else None
        self.bitrates: dict[str, object] = {}  # the bitrate chosen per lossy format
        self.depth = 24  # the bit depth chosen for WAV/FLAC
        self.settings = settings
        self.task: ExportTask | None = None
        self.peak_task: PeakTask | None = None
        self.progress: QProgressDialog | None = None
        self.written: list[Path] = []
        self.last_outcome: str | None = None
        self.peak_db: float | None = None  # of the last remix measured
        self.normalized_by_db: float | None = None  # master change of a normalised export

        outer = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.stem_boxes: dict[str, dict[str, QCheckBox]] = {}
        self.tabs.addTab(self._stem_tab(
            "stems", "Each chosen stem becomes its own file. All files have the same length "
            "and start at 0:00, so they line up in any DAW.", checked=True), "Stems")
        self.tabs.addTab(self._remix_tab(), "Remix")
        self.tabs.addTab(self._stem_tab(
            "minus", "Remove the checked stems and keep everything else, e.g. a karaoke "
            "(minus vocals) or play-along (minus drums) track.", checked=False,
            default=("vocals",)), "Song minus…")
        self.tabs.addTab(self._stem_tab(
            "daw", "Writes the chosen stems and a project that opens them, each on its own "
            "named, coloured track at 0:00 with the mixer's settings: a REAPER .RPP next "
            "to them, or an Ardour session folder (WAV or FLAC) that holds them.",
            checked=True), "DAW project")
        self.daw_combo = QComboBox(self)  # which DAW's project the "daw" tab writes
        self.daw_combo.addItem("REAPER project (.RPP)", "reaper")
        self.daw_combo.addItem("Ardour session", "ardour")
        self.daw_combo.currentIndexChanged.connect(self.update_preview)
        self.tabs.widget(MODES.index("daw")).layout().insertWidget(1, self.daw_combo)
        self.tabs.addTab(self._nistems_tab(), "NI Stems (DJ)")
        outer.addWidget(self.tabs)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.format_combo = QComboBox(self)
        for fmt in OUTPUT_FORMATS:
            self.format_combo.addItem(LOSSY_FORMATS[fmt].name if fmt in LOSSY_FORMATS
                                      else fmt.upper(), fmt)
        self.depth_combo = QComboBox(self)
        self.depth_combo.setToolTip("Bit depth (WAV and FLAC)")
        self.bitrate_combo = QComboBox(self)
        self.bitrate_combo.setToolTip("Bitrate (MP3, M4A and Opus; MP3 also variable "
                                      "bitrate)")
        self.rate_combo = QComboBox(self)
        self.rate_combo.addItem(f"Original ({self.samplerate} Hz)", None)
        for rate in SAMPLE_RATES:
            if rate != self.samplerate:
                self.rate_combo.addItem(f"{rate} Hz", rate)
        fmt_row = QHBoxLayout()
        fmt_row.addWidget(self.format_combo)
        fmt_row.addWidget(self.depth_combo)
        fmt_row.addWidget(self.bitrate_combo)
        fmt_row.addWidget(self.rate_combo, 1)
        form.addRow("Format:", fmt_row)

        self.folder_edit = QLineEdit(self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self.browse_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder:", folder_row)
        self.subfolder_box = QCheckBox("Put the files in a new folder named after the song",
                                       self)
        self.subfolder_box.setToolTip("One folder per song keeps the stems of different "
                                      "songs apart")
        form.addRow("", self.subfolder_box)

        self.pattern_edit = QLineEdit(self)
        self.pattern_edit.setToolTip(PATTERN_TOOLTIP)
        self.model_button = QPushButton("Model name", self)
        self.model_button.setToolTip(f"Put the model's name in each file name: "
                                     f"{MODEL_PATTERN}")
        self.model_button.setEnabled(model is not None)
        self.model_button.clicked.connect(lambda: self.pattern_edit.setText(MODEL_PATTERN))
        pattern_row = QHBoxLayout()
        pattern_row.addWidget(self.pattern_edit, 1)
        pattern_row.addWidget(self.model_button)
        form.addRow("File names:", pattern_row)
        self.preview = QLabel(self)
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.preview.setMinimumHeight(
            (PREVIEW_LINES + 3) * self.preview.fontMetrics().lineSpacing())
        form.addRow("Preview:", self.preview)
        outer.addLayout(form)

        self.status = QLabel(self)
        self.status.setWordWrap(True)
        outer.addWidget(self.status)
        self.buttons = QDialogButtonBox(self)
        self.export_button = self.buttons.addButton(
            "Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.open_button = self.buttons.addButton(
            "Open folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_button.setToolTip("Show the exported files in the file manager")
        self.open_button.setEnabled(False)  # until something was exported
        self.open_button.clicked.connect(self.open_folder)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self.start_export)
        self.buttons.rejected.connect(self.reject)
        outer.addWidget(self.buttons)

        from .multitrack import VisibleChecks

        self.check_style = VisibleChecks()  # unticked boxes that show on the dark theme
        for box in (self.subfolder_box, self.copy_mix_box,
                    *(b for boxes in self.stem_boxes.values() for b in boxes.values())):
            box.setStyle(self.check_style)
        self._load_settings()
        self.format_combo.currentIndexChanged.connect(self._on_format)
        for w in (self.folder_edit, self.pattern_edit):
            w.textChanged.connect(self.update_preview)
        self.subfolder_box.toggled.connect(self.update_preview)
        self.copy_mix_box.toggled.connect(self.update_preview)
        self.tabs.currentChanged.connect(self._on_mode)
        self.depth_combo.currentIndexChanged.connect(self.update_preview)
        self.bitrate_combo.currentIndexChanged.connect(self._on_bitrate)
        self.update_preview()
        self.resize(560, self.sizeHint().height())

    # -- building ---------------------------------------------------------------------
    def _stem_tab(self, mode: str, help_text: str, checked: bool,
                  default: tuple[str, ...] = ()) -> QWidget:
        page = QWidget(self)
        lay = QVBoxLayout(page)
        info = QLabel(help_text, page)
        info.setWordWrap(True)
        lay.addWidget(info)
        grid = QGridLayout()
        boxes: dict[str, QCheckBox] = {}
        for i, stem_id in enumerate(self.stems):
            stem = get_stem(stem_id)
            box = QCheckBox(stem.name, page)
            box.setChecked(checked or stem_id in default)
            box.setIcon(_swatch(stem.color))
            box.toggled.connect(self.update_preview)
            grid.addWidget(box, i // 3, i % 3)
            boxes[stem_id] = box
        lay.addLayout(grid)
        if mode != "minus":
            row = QHBoxLayout()
            for text, value in (("All", True), ("None", False)):
                b = QPushButton(text, page)
                b.clicked.connect(lambda _=False, v=value, m=mode: self._check_all(m, v))
                row.addWidget(b)
            row.addStretch(1)
            lay.addLayout(row)
        if mode == "stems":
            self.copy_mix_box = QCheckBox("Copy the original mix next to the stems", page)
            self.copy_mix_box.setToolTip("The song's own file, unchanged, as \"<song> - "
                                         "Mix\" (only for a song opened from a file)")
            self.copy_mix_box.setEnabled(self.song_path is not None)
            lay.addWidget(self.copy_mix_box)
        lay.addStretch(1)
        self.stem_boxes[mode] = boxes
        return page

    def _remix_tab(self) -> QWidget:
        page = QWidget(self)
        lay = QVBoxLayout(page)
        info = QLabel("A stereo file of the mixer's current settings (faders, pan, mute, "
                      "solo, master), rendered exactly, not recorded from playback.", page)
        info.setWordWrap(True)
        lay.addWidget(info)
        self.remix_summary = QLabel(mixer_summary(self.mixer_state, list(self.stems)), page)
        self.remix_summary.setWordWrap(True)
        self.remix_summary.setStyleSheet("color: #9aa3b2;")
        lay.addWidget(self.remix_summary)
        lay.addStretch(1)
        return page

    def _nistems_tab(self) -> QWidget:
        page = QWidget(self)
        lay = QVBoxLayout(page)
        try:
            check_ni_stem_ids(self.stems)
            why = ""
        except StemwrightError as exc:
            why = f"<br><span style='color:#e05a47'>Not available: {html(str(exc))}</span>"
        info = QLabel("One <b>.stem.mp4</b> file for Traktor, Mixxx and djay: the mix and "
                      "four stems (our six, grouped as chosen below) as AAC at "
                      f"{NI_STEMS_KBPS} kbit/s or lossless ALAC, at 44.1 or 48 kHz. DJ "
                      "software plays the mix and lets you mute or filter each stem live."
                      + why, page)
        info.setWordWrap(True)
        lay.addWidget(info)
        lay.addWidget(NIStemsOptions.attach(self, page))
        lay.addStretch(1)
        return page

    def _check_all(self, mode: str, value: bool) -> None:
        for box in self.stem_boxes[mode].values():
            box.setChecked(value)

    # -- options ----------------------------------------------------------------------
    def mode(self) -> str:
        return MODES[self.tabs.currentIndex()]

    def set_mode(self, mode: str) -> None:
        self.tabs.setCurrentIndex(MODES.index(mode))

    def chosen(self, mode: str | None = None) -> list[str]:
        """Checked stems of a mode's tab, in canonical order."""
        boxes = self.stem_boxes.get(mode or self.mode(), {})
        return [s for s, b in boxes.items() if b.isChecked()]

    def format(self) -> str:
        return self.format_combo.currentData()

    def bit_depth(self) -> int:
        return int(self.depth_combo.currentData() or 24)

    def bitrate_kbps(self) -> int | None:
        """The chosen bitrate of a lossy format (None: lossless, or MP3 VBR)."""
        data = self.bitrate_combo.currentData() if self.format() in LOSSY_FORMATS else None
        return int(data) if isinstance(data, int) else None

    def vbr(self) -> int | None:
        """The chosen MP3 VBR quality (LAME -V), None for a constant bitrate."""
        data = self.bitrate_combo.currentData() if self.format() in LOSSY_FORMATS else None
        return int(data[1:]) if isinstance(data, str) and data.startswith("V") else None

    def samplerate_out(self) -> int | None:
        return self.rate_combo.currentData()

    def folder(self) -> Path:
        base = Path(self.folder_edit.text().strip() or ".").expanduser()
        if self.subfolder_box.isChecked():
            base = base / safe_filename(self.song)
        return base

    def pattern(self) -> str:
        return self.pattern_edit.text() or DEFAULT_PATTERN

    def _on_format(self) -> None:
        fmt = self.format()
        lossy = fmt in LOSSY_FORMATS
        if not lossy:
            self.depth = self.depth_combo.currentData() or getattr(self, "depth", 24)
        self.depth_combo.blockSignals(True)
        self.depth_combo.clear()
        if lossy:  # the bit depth does not apply: the bitrate does
            self.depth_combo.addItem("—", None)
        else:
            for depth in SAVE_FORMATS[fmt]:
                self.depth_combo.addItem(BIT_DEPTH_NAMES.get(depth, f"{depth}-bit"), depth)
            index = self.depth_combo.findData(self.depth)
            self.depth_combo.setCurrentIndex(index if index >= 0 else
                                             self.depth_combo.findData(24))
        self.depth_combo.blockSignals(False)
        self.depth_combo.setEnabled(not lossy)
        self.bitrate_combo.blockSignals(True)
        self.bitrate_combo.clear()
        if lossy:
            spec = LOSSY_FORMATS[fmt]
            for kbps in spec.common_kbps:
                self.bitrate_combo.addItem(f"{kbps} kbit/s", kbps)
            if fmt == "mp3":
                for q, text in MP3_VBR_CHOICES.items():
                    self.bitrate_combo.addItem(text, f"V{q}")
            index = self.bitrate_combo.findData(self.bitrates.get(fmt, spec.default_kbps))
            self.bitrate_combo.setCurrentIndex(
                index if index >= 0 else self.bitrate_combo.findData(spec.default_kbps))
        else:
            self.bitrate_combo.addItem("—", None)
        self.bitrate_combo.blockSignals(False)
        self.bitrate_combo.setEnabled(lossy)
        self.update_preview()

    def _on_mode(self) -> None:
        """NI Stems has its own fixed format (AAC in MP4 at 44.1/48 kHz): the format row
        does not apply to it and is greyed out."""
        ni = self.mode() == "nistems"
        self.format_combo.setEnabled(not ni)
        self.rate_combo.setEnabled(not ni)
        if ni:
            self.depth_combo.setEnabled(False)
            self.bitrate_combo.setEnabled(False)
        else:
            self._on_format()  # enables the depth or bitrate menu of the chosen format
        self.update_preview()

    def _on_bitrate(self) -> None:
        if self.format() in LOSSY_FORMATS:
            self.bitrates[self.format()] = self.bitrate_combo.currentData()
        self.update_preview()

    def browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder",
                                                  self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _load_settings(self) -> None:
        """The last export's choices; the first time a "Stemwright" folder in the user's
        Music (or Documents) folder, one folder per song."""
        from ..settings import default_export_folder

        s = self.settings
        folder = s.value("export/folder", "") if s is not None else ""
        first_time = not folder
        if not folder:
            folder = str(default_export_folder())
        self.folder_edit.setText(str(folder))
        fmt = s.value("export/format", "wav") if s is not None else "wav"
        depth = str(s.value("export/bit_depth", 24)) if s is not None else "24"
        self.depth = int(depth) if depth.isdigit() else 24
        for lossy in LOSSY_FORMATS:
            value = s.value(f"export/bitrate_{lossy}") if s is not None else None
            if value is not None:  # an int of kbit/s, or "V<n>" (MP3 VBR)
                text = str(value)
                if text.startswith("V") or text.isdigit():
                    self.bitrates[lossy] = text if text.startswith("V") else int(text)
        self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(fmt)))
        self._on_format()
        if s is not None:
            self.pattern_edit.setText(str(s.value("export/pattern", DEFAULT_PATTERN)))
            # a folder per song unless the user turned it off (settings written before
            # this option existed hold a folder but no choice: kept as they were)
            subfolder = s.value("export/subfolder", first_time)
            self.subfolder_box.setChecked(subfolder in (True, "true"))
            self.copy_mix_box.setChecked(s.value("export/copy_mix", False) in (True, "true"))
        else:
            self.pattern_edit.setText(DEFAULT_PATTERN)
            self.subfolder_box.setChecked(True)

    def _save_settings(self) -> None:
        s = self.settings
        if s is None:
            return
        s.setValue("export/folder", self.folder_edit.text().strip())
        s.setValue("export/format", self.format())
        if self.format() in SAVE_FORMATS:
            s.setValue("export/bit_depth", self.bit_depth())
        for fmt, value in self.bitrates.items():
            if value is not None:
                s.setValue(f"export/bitrate_{fmt}", value)
        s.setValue("export/pattern", self.pattern())
        s.setValue("export/subfolder", self.subfolder_box.isChecked())
        s.setValue("export/copy_mix", self.copy_mix_box.isChecked())
        s.sync()

    # -- the job ----------------------------------------------------------------------
    def build_job(self) -> ExportJob:
        """The current choices as a job; StemwrightError if they do not make sense."""
        mode, fmt, depth = self.mode(), self.format(), self.bit_depth()
        rate, folder, pattern = self.samplerate_out(), self.folder(), self.pattern()
        stems, sr, song, model = self.stems, self.samplerate, self.song, self.model
        lossy = {"bitrate_kbps": self.bitrate_kbps(), "vbr": self.vbr(),
                 "artist": self.artist}
        if not stems:
            raise StemwrightError("there are no stems yet: separate the song first")
        if mode in ("stems", "daw"):
            which = self.chosen(mode)
            if not which:
                raise StemwrightError("choose at least one stem")
            targets = [folder / stem_filename(song, s, fmt, pattern, model=model)
                       for s in which]
            if len(set(targets)) != len(targets):
                raise StemwrightError(f"the naming pattern '{pattern}' gives several stems "
                                      "the same file name; add {stem}")
            extra: dict[str, object] = {}
            if mode == "daw" and self.daw_combo.currentData() == "ardour":
                if fmt not in SESSION_FORMATS:  # what Ardour reads as session audio
                    raise StemwrightError("an Ardour session holds WAV or FLAC stems")
                targets = [session_folder(folder, song)]  # one folder holds it all
                fn: Callable[..., object] = export_ardour_session
                extra = {"mixer": copy.deepcopy(self.mixer_state), "bpm": self.bpm}
                pattern = pattern_with_model(pattern, model)  # it takes no model
            elif mode == "daw":
                targets.append(folder / project_filename(song))
                fn = export_daw_session
                # the project's tracks get the mixer as it is now (a copy: the export
                # runs in the background) and the song's tempo when it is known
                extra = {"mixer": copy.deepcopy(self.mixer_state), "bpm": self.bpm,
                         "model": model}
            else:
                fn = export_stems
                extra = {"model": model}

            def run(**kw: object) -> object:
                return fn(stems, sr, folder, song, which=which, format=fmt, bit_depth=depth,
                          samplerate_out=rate, pattern=pattern, **extra, **lossy, **kw)
            if mode == "stems" and self.copy_mix_box.isChecked() and self.song_path:
                return self._with_mix(targets, run)
            return ExportJob(mode, targets, run)
        if mode == "remix":
            return self._remix_job(self.mixer_state)
        if mode == "nistems":
            return self._nistems_job()
        exclude = self.chosen("minus")
        if not exclude:
            raise StemwrightError("check the stems to remove from the song")
        if len(exclude) == len(stems):
            raise StemwrightError("removing every stem leaves nothing to export")
        target = folder / remix_filename(song, fmt, minus_label(exclude), pattern,
                                         model=model)

        def run(**kw: object) -> object:
            return export_song_minus(stems, sr, exclude, target, format=fmt, bit_depth=depth,
                                     samplerate_out=rate, song=song, **lossy, **kw)
        return ExportJob(mode, [target], run)

    def _with_mix(self, targets: list[Path], run: Callable[..., object]) -> ExportJob:
        """The stems (`run`), then the song's own file copied next to them as "<song> -
        Mix.<ext>" (atomically; replaced only when the user agreed to replace files)."""
        assert self.song_path is not None
        mix = mix_target(self.folder(), self.song, self.song_path)
        if mix in targets:
            raise StemwrightError(f"the naming pattern '{self.pattern()}' names a stem like "
                                  f"the copied mix ({mix.name}); change the pattern")
        return ExportJob("stems", [*targets, mix], with_mix_copy(run, self.song_path, mix),
                         copied=mix)

    def _nistems_job(self) -> ExportJob:
        """The song as an NI Stems file (`export_ni_stems`)."""
        ni = self.ni_options.export_options(self.stems)  # StemwrightError: a slot empty
        name = safe_filename(self.song) + ".stem.mp4"
        if self.pattern() != DEFAULT_PATTERN:
            name = stem_filename(self.song, "mix", "mp4", self.pattern(), model=self.model)
            name = name.removesuffix(".mp4") + ".stem.mp4"
        target = self.folder() / name
        stems, sr, song, artist = self.stems, self.samplerate, self.song, self.artist
        tags = {"title": song, **({"artist": artist} if artist else {})}

        def run(overwrite: bool = False, progress=None, cancel=None) -> object:
            return export_ni_stems(stems, sr, target, overwrite=overwrite, **ni,
                                   tags=tags, progress=progress,
                                   cancel=cancel)
        return ExportJob("nistems", [target], run)

    def _remix_job(self, state: MixerState) -> ExportJob:
        """The remix of `state` with the dialog's file options."""
        fmt, depth, rate = self.format(), self.bit_depth(), self.samplerate_out()
        target = self.folder() / remix_filename(self.song, fmt, "Remix", self.pattern(),
                                                model=self.model)
        stems, sr, song = self.stems, self.samplerate, self.song
        lossy = {"bitrate_kbps": self.bitrate_kbps(), "vbr": self.vbr(),
                 "artist": self.artist}

        def run(**kw: object) -> object:
            return export_remix(stems, sr, state, target, format=fmt, bit_depth=depth,
                                samplerate_out=rate, song=song, **lossy, **kw)
        return ExportJob("remix", [target], run)

    def update_preview(self) -> None:
        """Show the file names the export will write (or why it cannot)."""
        try:
            job = self.build_job()
        except StemwrightError as exc:
            self.preview.setText(f"<span style='color:#e05a47'>{exc}</span>")
            self.export_button.setEnabled(False)
            return
        daw = self.daw_combo.currentData() if job.mode == "daw" else None
        self.preview.setText(preview_html(job.targets, daw, job.copied))
        self.export_button.setEnabled(self.task is None and self.peak_task is None)

    def confirm_overwrite(self, existing: list[Path]) -> bool:
        """Ask before replacing files (tests replace this method)."""
        answer = QMessageBox.question(
            self, "Replace existing files?", overwrite_question(existing),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def ask_clipping(self, peak_db: float) -> str:
        """Ask what to do with a remix that would clip: "normalize", "continue" or
        "cancel" (tests replace this method)."""
        return ask_clipping(self, peak_db)

    def start_export(self) -> bool:
        """Check, ask about overwriting (and, for a remix, about clipping once its level
        is measured), then export on a worker thread. False if not started."""
        if self.task is not None or self.peak_task is not None:
            return False
        try:
            job = self.build_job()
        except StemwrightError as exc:
            show_exception(self, exc, "Export")
            return False
        existing = [t for t in job.targets if t.exists()]
        overwrite = False
        if existing:
            if not self.confirm_overwrite(existing):
                self.status.setText("Nothing exported: existing files were kept.")
                return False
            overwrite = True
        self._save_settings()
        if job.mode == "remix":
            self._check_peak(overwrite)
        else:
            self._launch(job, overwrite)
        return True

    def _check_peak(self, overwrite: bool) -> None:
        """Measure the remix's peak on a worker thread; `_peak_measured` goes on."""
        state = copy.deepcopy(self.mixer_state)
        task = PeakTask(self.stems, state, self)
        self.peak_task = task
        task.succeeded.connect(lambda peak: self._peak_measured(state, peak, overwrite))
        task.failed.connect(lambda exc: show_exception(self, exc, "Export failed"))
        task.cancelled.connect(lambda: self.status.setText("Export cancelled."))
        task.finished.connect(self._peak_finished)
        self.export_button.setEnabled(False)
        self.status.setText("Checking the remix level…")
        task.start()

    def _peak_finished(self) -> None:
        task, self.peak_task = self.peak_task, None
        if task is not None:
            task.deleteLater()
        self.update_preview()

    def _peak_measured(self, state: MixerState, peak: float, overwrite: bool) -> None:
        """Ask about clipping if the remix would clip, then export."""
        self.peak_db = gain_to_db(peak)
        if peak > 1.0:
            choice = self.ask_clipping(self.peak_db)
            if choice == "cancel":
                self.status.setText(f"Nothing exported: the remix would clip "
                                    f"({format_db(self.peak_db)} peak).")
                return
            if choice == "normalize":
                state = normalized_state(state, peak)
                self.normalized_by_db = state.master_db - self.mixer_state.master_db
        self._launch(self._remix_job(state), overwrite)

    def _launch(self, job: ExportJob, overwrite: bool) -> None:
        """Run `job` on a worker thread behind a progress dialog."""
        self.task = ExportTask(job, overwrite, self)
        self.progress = QProgressDialog(f"Exporting {MODE_TITLES[job.mode].lower()}…",
                                        "Cancel", 0, 1000, self)
        self.progress.setWindowTitle("Export")
        self.progress.setWindowModality(Qt.WindowModality.WindowModal)
        self.progress.setMinimumDuration(300)
        self.progress.setAutoClose(False)
        self.progress.setAutoReset(False)
        self.progress.canceled.connect(self.task.cancel)
        self.task.progressed.connect(
            lambda f, _eta, _msg: self.progress and self.progress.setValue(int(f * 1000)))
        self.task.succeeded.connect(self._on_done)
        self.task.failed.connect(self._on_failed)
        self.task.cancelled.connect(self._on_cancelled)
        self.task.finished.connect(self._on_finished)
        self.export_button.setEnabled(False)
        self.status.setText("Exporting…")
        self.task.start()

    def cancel_export(self) -> None:
        for task in (self.task, self.peak_task):
            if task is not None:
                task.cancel()

    def exported_folder(self) -> Path | None:
        """The folder of the last export (None before the first)."""
        return Path(self.written[0]).parent if self.written else None

    def open_folder(self) -> bool:
        """Show the exported files' folder in the file manager."""
        folder = self.exported_folder()
        if folder is None or not folder.is_dir():
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _on_done(self, paths: list[Path]) -> None:
        self.written = list(paths)
        self.last_outcome = "ok"
        self.open_button.setEnabled(bool(paths))
        folder = paths[0].parent if paths else self.folder()
        text = f"Exported {len(paths)} file{'s' if len(paths) != 1 else ''} to {folder}."
        if self.normalized_by_db is not None:
            text += f" Normalised: {format_db(self.normalized_by_db)} on the master."
            self.normalized_by_db = None
        self.status.setText(text)
        self.exported.emit(self.written)

    def _on_failed(self, exc: BaseException) -> None:
        self.last_outcome = "failed"
        self.status.setText(f"Export failed: {exc}")
        show_exception(self, exc, "Export failed")

    def _on_cancelled(self) -> None:
        self.last_outcome = "cancelled"
        self.status.setText("Export cancelled: no files were kept.")

    def _on_finished(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress.deleteLater()
            self.progress = None
        task, self.task = self.task, None
        if task is not None:
            task.deleteLater()
        self.update_preview()

    def done(self, result: int) -> None:  # noqa: D102 - closing waits for a running export
        for task in (self.task, self.peak_task):
            if task is not None:
                task.stop_and_wait()
        super().done(result)


def _swatch(color: str, size: int = 12) -> QIcon:
    """A small rounded square of a stem's colour."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(color))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(0, 0, size, size, 3, 3)
    painter.end()
    return QIcon(pixmap)
