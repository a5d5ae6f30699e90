"""The Export dialog's NI Stems options: which of our stems go into NI's four slots (a
preset or a custom spec, `parse_ni_mapping`) and the codec (AAC, or lossless ALAC at 16
or 24 bit). A separate module so export.py stays short: the dialog adds this widget to
its NI Stems tab (`attach`) and asks it for `export_ni_stems`'s options."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from stemwright.models.errors import StemwrightError
from stemwright.models.remix.nistems import NIMapping, parse_ni_mapping

#: the mapping menu: (label, preset name or "" for the custom spec field)
MAPPINGS = (("Drums | Bass | Other (guitar, wind, other) | Vocals", "default"),
            ("Guitar on its own: Drums | Bass | Guitar | Vocals & rest", "guitar"),
            ("Wind on its own: Drums | Bass | Wind | Vocals & rest", "wind"),
            ("Custom…", ""))
#: the codec menu: (label, codec, bit depth); the menu's data is "aac", "alac16", "alac24"
CODECS = (("AAC 256 kbit/s (smaller)", "aac", 24), ("ALAC 16-bit (lossless)", "alac", 16),
          ("ALAC 24-bit (lossless)", "alac", 24))
AAC_KBPS = 256
CUSTOM_HINT = "drums;bass;Guitar=electric_guitar;vocals+other+wind"


class NIStemsOptions(QWidget):
    """Mapping and codec menus, remembered in the dialog's QSettings."""

    changed = Signal()

    def __init__(self, settings=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.mapping_combo = QComboBox(self)
        for label, key in MAPPINGS:
            self.mapping_combo.addItem(label, key)
        self.custom_edit = QLineEdit(self)
        self.custom_edit.setPlaceholderText(CUSTOM_HINT)
        self.custom_edit.setToolTip("Four groups for NI's drums, bass, other and vocals "
                                    "slots, separated by ';'; stems joined by '+'; an "
                                    "optional Name= before each group")
        self.codec_combo = QComboBox(self)
        for label, codec, depth in CODECS:
            self.codec_combo.addItem(label, codec if codec == "aac" else f"{codec}{depth}")
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)  # escaped text, or the error span
        self.summary.setStyleSheet("color: #9aa3b2;")
        form.addRow("Stems", self.mapping_combo)
        form.addRow("Custom", self.custom_edit)
        form.addRow("Codec", self.codec_combo)
        form.addRow(self.summary)
        self._load()
        self.mapping_combo.currentIndexChanged.connect(self._on_change)
        self.custom_edit.textChanged.connect(self._on_change)
        self.codec_combo.currentIndexChanged.connect(self._on_change)
        self._show()

    @classmethod
    def attach(cls, dialog, parent: QWidget) -> NIStemsOptions:
        """Make the widget for `dialog` (as `dialog.ni_options`); a change updates the
        dialog's preview."""
        widget = cls(getattr(dialog, "settings", None), parent)
        dialog.ni_options = widget
        widget.changed.connect(dialog.update_preview)
        return widget

    def mapping(self) -> NIMapping:
        """The chosen mapping; StemwrightError (AudioError) for a bad custom spec."""
        key = self.mapping_combo.currentData()
        if key:
            return parse_ni_mapping(key)
        text = self.custom_edit.text().strip()
        if not text:
            raise StemwrightError(f"type the custom NI Stems mapping, e.g. {CUSTOM_HINT}")
        return parse_ni_mapping(text)

    def codec(self) -> tuple[str, int]:
        """("aac" or "alac", bit depth)."""
        data = str(self.codec_combo.currentData() or "aac")
        return ("aac", 24) if data == "aac" else ("alac", int(data[4:]))

    def export_options(self, stem_ids) -> dict:
        """`export_ni_stems` keywords for these stems; StemwrightError when the mapping is
        bad or leaves a slot without a stem (or a stem without a slot)."""
        mapping = self.mapping()
        mapping.check(stem_ids)
        codec, depth = self.codec()
        return {"mapping": mapping, "codec": codec, "bit_depth": depth,
                "bitrate_kbps": AAC_KBPS}

    # -- internals ----------------------------------------------------------------------
    def _load(self) -> None:
        s = self.settings
        if s is None:
            return
        key = str(s.value("export/ni_mapping", "default") or "default")
        index = self.mapping_combo.findData(key)
        if index < 0:  # a custom spec
            self.custom_edit.setText(key)
            index = self.mapping_combo.findData("")
        self.mapping_combo.setCurrentIndex(index)
        index = self.codec_combo.findData(str(s.value("export/ni_codec", "aac")))
        self.codec_combo.setCurrentIndex(max(index, 0))

    def _save(self) -> None:
        s = self.settings
        if s is None:
            return
        key = self.mapping_combo.currentData() or self.custom_edit.text().strip()
        if key:
            s.setValue("export/ni_mapping", key)
        s.setValue("export/ni_codec", self.codec_combo.currentData())

    def _show(self) -> None:
        self.custom_edit.setEnabled(not self.mapping_combo.currentData())
        try:
            text = html.escape(self.mapping().describe())
        except StemwrightError as exc:
            text = f"<span style='color:#e05a47'>{html.escape(str(exc))}</span>"
        self.summary.setText(text)

    def _on_change(self) -> None:
        self._show()
        self._save()
        self.changed.emit()
