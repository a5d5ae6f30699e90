"""The batch queue's output options (`stemwright separate`'s --stems/--preset, --bitrate/
--vbr, --ni-stems-mapping/--ni-stems-codec, --name-model, --copy-mix): the widgets, shown
only where they apply to the chosen format, and their reading from and writing to the
queue's `QueueSettings`. Checking them is `QueueSettings.to_batch`'s work (the CLI's
rules), so this module only shows them.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from stemwright.models.audio.encode import LOSSY_FORMATS
from stemwright.models.cli.batch import NI_STEMS
from stemwright.models.remix.ni_mapping import NI_PRESETS
from stemwright.models.stems import STEM_IDS, get_stem

from ..controllers.batch_state import WRITE_ALL, WRITE_STEMS, QueueSettings

CUSTOM = "custom"
#: (label, `QueueSettings.write`)
WRITE_CHOICES: tuple[tuple[str, str], ...] = (
    ("Every stem the model makes", WRITE_ALL),
    ("Chosen stems", WRITE_STEMS),
    ("Karaoke: the song minus vocals, and the vocals", "karaoke"),
    ("A cappella: the vocals only", "a-cappella"),
    *((f"Practice: the song minus {get_stem(s).name.lower()}", f"practice-{s}")
      for s in STEM_IDS),
)
#: (label, the combo's data: codec and, for ALAC, the bit depth)
CODEC_CHOICES = (("AAC", "aac"), ("ALAC 16-bit", "alac16"), ("ALAC 24-bit", "alac24"))
MAPPING_TIP = ("Four groups for NI's drums, bass, other and vocals slots separated by ';', "
               "stems joined by '+', each optionally named, e.g. "
               "drums;bass;Guitar=electric_guitar;vocals+other+wind")


class OutputOptions(QObject):
    """The output option widgets of the queue's settings box; `changed` on any edit."""

    changed = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.bitrate_label = QLabel("Bitrate:")
        self.bitrate_spin = QSpinBox()
        self.bitrate_spin.setSuffix(" kbit/s")
        self.bitrate_spin.setToolTip("The lossy format's bitrate (--bitrate); the lowest "
                                     "value means the format's default")
        self.vbr_combo = QComboBox()
        self.vbr_combo.setToolTip("MP3: constant bitrate, or LAME's variable-bitrate "
                                  "quality (--vbr)")
        self.vbr_combo.addItem("Constant bitrate", -1)
        best, smallest = LOSSY_FORMATS["mp3"].vbr or (0, 9)
        for q in range(best, smallest + 1):
            self.vbr_combo.addItem(f"VBR -V{q}" + (" (best)" if q == best else
                                                   " (smallest)" if q == smallest else ""), q)
        self.codec_combo = QComboBox()
        self.codec_combo.setToolTip("NI Stems: AAC (lossy, with the bitrate) or ALAC "
                                    "(lossless) (--ni-stems-codec)")
        for label, data in CODEC_CHOICES:
            self.codec_combo.addItem(label, data)

        self.write_combo = QComboBox()
        self.write_combo.setToolTip("Which files each song gets (--stems or --preset)")
        for label, value in WRITE_CHOICES:
            self.write_combo.addItem(label, value)
        self.stem_checks: dict[str, QCheckBox] = {
            s: QCheckBox(get_stem(s).name) for s in STEM_IDS}
        self.mapping_label = QLabel("NI Stems slots:")
        self.mapping_combo = QComboBox()
        self.mapping_combo.setToolTip("Which stems go into NI's four slots "
                                      "(--ni-stems-mapping)")
        for name, mapping in NI_PRESETS.items():
            self.mapping_combo.addItem(f"{name.capitalize()}: {mapping.describe()}", name)
        self.mapping_combo.addItem("Custom\u2026", CUSTOM)
        self.mapping_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.mapping_combo.setMinimumContentsLength(16)
        self.mapping_edit = QLineEdit()
        self.mapping_edit.setPlaceholderText("drums;bass;Guitar=electric_guitar;"
                                             "vocals+other+wind")
        self.mapping_edit.setToolTip(MAPPING_TIP)

        self.more_button = QToolButton()
        self.more_button.setText("More options")
        self.more_button.setCheckable(True)
        self.more_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.more_button.setArrowType(Qt.ArrowType.RightArrow)
        self.more_button.toggled.connect(self._show_more)
        self.name_model_check = QCheckBox("Put the model's name in file names")
        self.name_model_check.setToolTip("\"<song> - Vocals (<model>).wav\" (--name-model)")
        self.copy_mix_check = QCheckBox("Copy the original mix next to the stems")
        self.copy_mix_check.setToolTip("\"<song> - Mix.<its extension>\" (--copy-mix)")
        self.more = QWidget()
        more_row = QHBoxLayout(self.more)
        more_row.setContentsMargins(0, 0, 0, 0)
        more_row.addWidget(self.name_model_check)
        more_row.addWidget(self.copy_mix_check)
        more_row.addStretch(1)
        self.more.setVisible(False)

        self.files_row = QWidget()
        files = QHBoxLayout(self.files_row)
        files.setContentsMargins(0, 0, 0, 0)
        files.addWidget(self.write_combo)
        for check in self.stem_checks.values():
            files.addWidget(check)
        files.addWidget(self.mapping_label)
        files.addWidget(self.mapping_combo, 1)
        files.addWidget(self.mapping_edit, 2)
        files.addStretch(0)
        self._signals()

    def _signals(self) -> None:
        self.bitrate_spin.valueChanged.connect(self._edited)
        for combo in (self.vbr_combo, self.codec_combo, self.write_combo,
                      self.mapping_combo):
            combo.currentIndexChanged.connect(self._edited)
        for check in (*self.stem_checks.values(), self.name_model_check,
                      self.copy_mix_check):
            check.toggled.connect(self._edited)
        self.mapping_edit.editingFinished.connect(self._edited)

    def widgets(self) -> list[QWidget]:
        """Every input (disabled while a song runs)."""
        return [self.bitrate_spin, self.vbr_combo, self.codec_combo, self.write_combo,
                *self.stem_checks.values(), self.mapping_combo, self.mapping_edit,
                self.name_model_check, self.copy_mix_check]

    def add_to(self, form: QFormLayout, fmt_row: QHBoxLayout) -> None:
        """Put the widgets in the settings box: encoding on the format's row, the files
        on a row of their own."""
        for w in (self.bitrate_label, self.bitrate_spin, self.vbr_combo, self.codec_combo):
            fmt_row.addWidget(w)
        form.addRow("Files:", self.files_row)

    def _show_more(self, shown: bool) -> None:
        self.more.setVisible(shown)
        self.more_button.setArrowType(Qt.ArrowType.DownArrow if shown
                                      else Qt.ArrowType.RightArrow)

    def _edited(self) -> None:
        self.update_visibility()
        self.changed.emit()

    # -- settings ------------------------------------------------------------------------
    def load(self, s: QueueSettings, produced: tuple[str, ...]) -> None:
        """Show the settings (without `changed`)."""
        widgets = [*self.widgets(), self.bitrate_spin]
        for w in widgets:
            w.blockSignals(True)
        self.set_format(s.format, s.bitrate_kbps)
        self.vbr_combo.setCurrentIndex(max(0, self.vbr_combo.findData(s.vbr)))
        codec = f"alac{s.ni_bit_depth}" if s.ni_codec == "alac" else s.ni_codec
        self.codec_combo.setCurrentIndex(max(0, self.codec_combo.findData(codec)))
        self.write_combo.setCurrentIndex(max(0, self.write_combo.findData(s.write)))
        for stem, check in self.stem_checks.items():
            check.setChecked(stem in s.stems)
        preset = s.ni_mapping.strip().lower()
        if preset in NI_PRESETS:
            self.mapping_combo.setCurrentIndex(self.mapping_combo.findData(preset))
        else:
            self.mapping_combo.setCurrentIndex(self.mapping_combo.findData(CUSTOM))
            self.mapping_edit.setText(s.ni_mapping)
        self.name_model_check.setChecked(s.name_model)
        self.copy_mix_check.setChecked(s.copy_mix)
        self.more_button.setChecked(s.name_model or s.copy_mix)
        for w in widgets:
            w.blockSignals(False)
        self.set_model(produced)

    def store(self, s: QueueSettings) -> None:
        """Write the widgets' choices into the settings."""
        spin = self.bitrate_spin
        s.bitrate_kbps = 0 if spin.value() == spin.minimum() else spin.value()
        s.vbr = int(self.vbr_combo.currentData())
        codec = str(self.codec_combo.currentData())
        s.ni_codec = codec[:4] if codec.startswith("alac") else codec
        s.ni_bit_depth = int(codec[4:]) if codec.startswith("alac") else 24
        s.write = str(self.write_combo.currentData())
        s.stems = [stem for stem, check in self.stem_checks.items() if check.isChecked()]
        mapping = str(self.mapping_combo.currentData())
        s.ni_mapping = self.mapping_edit.text().strip() if mapping == CUSTOM else mapping
        s.name_model = self.name_model_check.isChecked()
        s.copy_mix = self.copy_mix_check.isChecked()

    def set_format(self, fmt: str, kbps: int = 0) -> None:
        """Fit the bitrate to the format (its range; the lowest value is "default")."""
        spec = LOSSY_FORMATS.get("m4a" if fmt == NI_STEMS else fmt)
        self.fmt = fmt
        spin = self.bitrate_spin
        spin.blockSignals(True)
        if spec is not None:
            spin.setRange(spec.min_kbps - 1, spec.max_kbps)
            spin.setSpecialValueText(f"Default ({256 if fmt == NI_STEMS else spec.default_kbps}"
                                     " kbit/s)")
            spin.setValue(kbps if spec.min_kbps <= kbps <= spec.max_kbps else spin.minimum())
        spin.blockSignals(False)
        self.update_visibility()

    def set_model(self, produced: tuple[str, ...]) -> None:
        """Offer only the stems the model makes (a stale choice is refused at Start)."""
        self.produced = produced
        for stem, check in self.stem_checks.items():
            check.setToolTip("" if stem in produced else "The model does not make this "
                             "stem")
        self.update_visibility()

    def set_enabled(self, enabled: bool) -> None:
        """Enable or disable every input (disabled while a song runs)."""
        self.enabled = enabled
        self.update_visibility()

    def update_visibility(self) -> None:
        """Show only what applies to the format."""
        fmt = getattr(self, "fmt", "wav")
        ni = fmt == NI_STEMS
        alac = ni and str(self.codec_combo.currentData()).startswith("alac")
        lossy = fmt in LOSSY_FORMATS or (ni and not alac)
        vbr = fmt == "mp3" and int(self.vbr_combo.currentData()) >= 0
        self.bitrate_label.setVisible(lossy)
        self.bitrate_spin.setVisible(lossy)
        enabled = getattr(self, "enabled", True)
        for w in self.widgets():
            w.setEnabled(enabled)
        self.bitrate_spin.setEnabled(enabled and not vbr)
        produced = getattr(self, "produced", STEM_IDS)
        for stem, check in self.stem_checks.items():
            check.setEnabled(enabled and (stem in produced or check.isChecked()))
        self.vbr_combo.setVisible(fmt == "mp3")
        self.codec_combo.setVisible(ni)
        self.write_combo.setVisible(not ni)
        chosen = self.write_combo.currentData() == WRITE_STEMS
        for check in self.stem_checks.values():
            check.setVisible(not ni and chosen)
        self.mapping_label.setVisible(ni)
        self.mapping_combo.setVisible(ni)
        self.mapping_edit.setVisible(ni and self.mapping_combo.currentData() == CUSTOM)
