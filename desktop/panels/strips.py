"""The mixer's strips: `ChannelStrip` (a stem's full strip: M/S, pan, a vertical fader
with its meter and dB readout), `SlimStrip` (the same in one short row, for the compact
mixer), and their parts (`LevelMeter`, `ResetSlider`, the fader's dB mapping). The panel
(`mixer.MixerPanel`) lays them out and wires them to the player."""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QLinearGradient,
    QMouseEvent,
    QPainter,
    QPaintEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.remix.mixer import FADER_FLOOR_DB
from stemwright.models.stems import get_stem

FADER_MAX_DB = 12.0
FADER_STEPS_PER_DB = 2  # 0.5 dB resolution
METER_FLOOR_DB = -60.0
METER_TOP_DB = 6.0
METER_FALL_DB_PER_S = 24.0
PEAK_HOLD_S = 1.5
REFRESH_MS = 33
STRIP_WIDTH = 96
METER_MIN = 60  # px: a meter's shortest useful height
METER_MIN_COMPACT = 36
MASTER_SPACING = 24 + 4 + 22 + 18  # buttons, pan slider, pan readout and their spacing
MASTER_COMPACT_LABEL = 16  # the master's readout above its fader in compact strips
MASTER_SPACING_COMPACT = 24 + 4 + 22 - MASTER_COMPACT_LABEL - 4
SCROLL_MIN_HEIGHT = 90  # the dock never hides the strips completely
SLIM_STRIP_MIN_WIDTH = 128  # name, M/S on one line; a fader of 70+ px and its readout
SLIM_NAMES = {"electric_guitar": "El. guitar"}  # the full name is in the tooltip

PANEL_BG = "#16181d"
STRIP_BG = "#1c1f26"
STRIP_BG_SELECTED = "#262b36"
TEXT = "#d8dee9"
DIM_TEXT = "#7c8493"



def fader_to_db(value: int) -> float:
    """Slider position -> dB (the bottom position is -inf)."""
    db = value / FADER_STEPS_PER_DB
    return -math.inf if db <= FADER_FLOOR_DB else db


def db_to_fader(db: float) -> int:
    """dB -> slider position (clamped to the fader's range)."""
    if db == -math.inf or db <= FADER_FLOOR_DB:
        return int(FADER_FLOOR_DB * FADER_STEPS_PER_DB)
    return int(round(min(db, FADER_MAX_DB) * FADER_STEPS_PER_DB))


def format_gain(db: float) -> str:
    return "-inf" if db == -math.inf else f"{db:+.1f}" if db else "0.0"


def format_pan(pan: float) -> str:
    """"C", "L50", "R100"."""
    pct = round(pan * 100)
    return "C" if pct == 0 else (f"L{-pct}" if pct < 0 else f"R{pct}")



def mute_solo_buttons(parent: QWidget, name: str) -> tuple[QPushButton, QPushButton]:
    """The checkable M and S buttons of a strip for the stem called `name` (styled by
    their object names)."""
    mute = QPushButton("M", parent)
    mute.setObjectName("mute")
    mute.setCheckable(True)
    mute.setToolTip(f"Mute {name}")
    solo = QPushButton("S", parent)
    solo.setObjectName("solo")
    solo.setCheckable(True)
    solo.setToolTip(f"Solo {name} (only soloed stems play)")
    return mute, solo

class ResetSlider(QSlider):
    """A slider that returns to a default value on double-click."""

    def __init__(self, orientation: Qt.Orientation, default: int = 0,
                 parent: QWidget | None = None) -> None:
        super().__init__(orientation, parent)
        self.default = default

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.setValue(self.default)
        event.accept()


class LevelMeter(QWidget):
    """A vertical peak meter (dBFS) with a falling bar, a peak-hold line and a clip light."""

    def __init__(self, parent: QWidget | None = None, width: int = 10,
                 horizontal: bool = False) -> None:
        super().__init__(parent)
        self.horizontal = horizontal  # a thin bar filling from the left (slim strips)
        if horizontal:
            self.setFixedHeight(width)
            self.setMinimumWidth(40)
            self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        else:
            self.setFixedWidth(width)
            self.setMinimumHeight(METER_MIN)
            self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.level_db = -math.inf
        self.hold_db = -math.inf
        self._hold_age = 0.0
        self.clipped = False

    def set_level(self, db: float, dt: float = REFRESH_MS / 1000) -> None:
        """Feed the latest peak; the bar falls at METER_FALL_DB_PER_S when it drops."""
        fallen = (self.level_db - METER_FALL_DB_PER_S * dt if self.level_db > METER_FLOOR_DB
                  else -math.inf)
        new = max(db, fallen)
        if new < METER_FLOOR_DB:
            new = -math.inf
        self._hold_age += dt
        if new >= self.hold_db or self._hold_age > PEAK_HOLD_S:
            self.hold_db, self._hold_age = new, 0.0
        if db > 0.0:
            self.clipped = True
        if new != self.level_db or self._hold_age == 0.0:
            self.level_db = new
            self.update()

    def reset(self) -> None:
        self.level_db = self.hold_db = -math.inf
        self.clipped = False
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.clipped = False  # click clears the clip light
        self.update()
        super().mousePressEvent(event)

    @staticmethod
    def _fraction(db: float) -> float:
        if db == -math.inf:
            return 0.0
        return min(1.0, max(0.0, (db - METER_FLOOR_DB) / (METER_TOP_DB - METER_FLOOR_DB)))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        w, h = self.width(), self.height()
        if self.horizontal:  # the vertical meter turned a quarter: it fills to the right
            p.translate(0, h)
            p.rotate(-90)
            w, h = h, w
        clip_h = 4
        body = QRectF(0, clip_h + 1, w, h - clip_h - 1)
        p.fillRect(body, QColor("#0f1115"))
        p.fillRect(QRectF(0, 0, w, clip_h), QColor("#ff3b30" if self.clipped else "#2a2d33"))
        if not self.isEnabled():
            p.end()
            return
        frac = self._fraction(self.level_db)
        if frac > 0:
            grad = QLinearGradient(0, body.bottom(), 0, body.top())
            zero = self._fraction(0.0)
            warn = self._fraction(-12.0)
            grad.setColorAt(0.0, QColor("#2fbf71"))
            grad.setColorAt(warn, QColor("#7ed957"))
            grad.setColorAt(min(zero - 0.01, 1.0), QColor("#f2c94c"))
            grad.setColorAt(zero, QColor("#ff3b30"))
            grad.setColorAt(1.0, QColor("#ff3b30"))
            bar_h = body.height() * frac
            p.fillRect(QRectF(0, body.bottom() - bar_h, w, bar_h), grad)
        hold = self._fraction(self.hold_db)
        if hold > 0:
            y = body.bottom() - body.height() * hold
            p.fillRect(QRectF(0, y - 1, w, 2), QColor("#e8ecf2"))
        # 0 dB tick
        y0 = body.bottom() - body.height() * self._fraction(0.0)
        p.fillRect(QRectF(0, y0, w, 1), QColor(255, 255, 255, 90))
        p.end()

    def sizeHint(self) -> QSize:  # noqa: N802
        if self.horizontal:
            return QSize(80, self.height())
        return QSize(self.width(), 160)


class ChannelStrip(QFrame):
    """One stem's strip; the panel wires its controls. Emits `clicked` when pressed."""

    clicked = Signal(str)

    def __init__(self, stem_id: str, available: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        stem = get_stem(stem_id)
        self.stem_id = stem.id
        self.available: bool | None = None  # set by set_available below
        self.compact = False
        self._name_style = ""
        self.setProperty("selected", "false")
        self.setFixedWidth(STRIP_WIDTH)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        self.swatch = QFrame(self)
        self.swatch.setFixedHeight(5)
        lay.addWidget(self.swatch)
        self.name = QLabel(stem.name, self)
        self.name.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.name.setToolTip(stem.name)
        self._name_fit = self._fitting_font_size(stem.name)
        # the normal height, so a smaller name does not shift the strip's controls up
        self.name.setFixedHeight(QFontMetrics(self.name.font()).height() + 2)
        lay.addWidget(self.name)

        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        self.mute, self.solo = mute_solo_buttons(self, stem.name)
        # compact strips show the gain here (their readout under the fader is hidden)
        self.compact_gain = QLabel("0.0", self)
        self.compact_gain.setObjectName("compactGain")
        self.compact_gain.setToolTip("Volume in dB")
        self.compact_gain.setVisible(False)
        buttons.addStretch(1)
        buttons.addWidget(self.mute)
        buttons.addWidget(self.solo)
        buttons.addWidget(self.compact_gain)
        buttons.addStretch(1)
        lay.addLayout(buttons)

        self.pan = ResetSlider(Qt.Orientation.Horizontal, 0, self)
        self.pan.setRange(-100, 100)
        self.pan.setToolTip("Pan (double-click: centre)")
        self.pan_label = QLabel("C", self)
        self.pan_label.setObjectName("dim")
        self.pan_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.pan)
        lay.addWidget(self.pan_label)

        fader_row = QHBoxLayout()
        fader_row.setSpacing(6)
        self.fader = ResetSlider(Qt.Orientation.Vertical, 0, self)
        self.fader.setRange(int(FADER_FLOOR_DB * FADER_STEPS_PER_DB),
                            int(FADER_MAX_DB * FADER_STEPS_PER_DB))
        self.fader.setValue(0)
        self.fader.setToolTip("Volume in dB (double-click: 0 dB)")
        self.meter = LevelMeter(self)
        fader_row.addStretch(1)
        fader_row.addWidget(self.fader)
        fader_row.addWidget(self.meter)
        fader_row.addStretch(1)
        lay.addLayout(fader_row, 1)
        self.gain_label = QLabel("0.0 dB", self)
        self.gain_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.gain_label)
        self.set_available(available)

    def set_available(self, available: bool) -> None:
        """Switch between a live strip and a greyed "not produced by this model" one
        (cheap when nothing changes: strips are reused, never rebuilt)."""
        available = bool(available)
        if available == self.available:
            return
        self.available = available
        stem = get_stem(self.stem_id)
        self.setProperty("available", "true" if available else "false")
        self.setToolTip(stem.description if available else
                        f"{stem.name}: not produced by this model")
        color = stem.color if available else "#3a3d44"
        self.swatch.setStyleSheet(f"background: {color}; border: none; border-radius: 2px;")
        self.set_name_dim(not available)
        for w in (self.mute, self.solo, self.pan, self.fader, self.meter):
            w.setEnabled(available)
        self.gain_label.setObjectName("" if available else "dim")
        if available:
            self.pan_label.setText("C")
            self.gain_label.setText("0.0 dB")
            self.compact_gain.setText("0.0")
        else:
            for w in (self.mute, self.solo):
                w.blockSignals(True)
                w.setChecked(False)
                w.blockSignals(False)
            self.meter.reset()
            self.pan_label.setText("")
            self.gain_label.setText("not produced\nby this model")
            self.compact_gain.setText("")
        self.set_compact(self.compact, force=True)
        for w in (self, self.gain_label):
            w.style().unpolish(w)
            w.style().polish(w)

    def _fitting_font_size(self, text: str) -> str:
        """A style-sheet font size that fits `text` in bold across the strip ("" when the
        normal size fits): "Electric guitar" is wider than a strip at the normal size."""
        font = QFont(self.name.font())
        font.setBold(True)
        width = QFontMetrics(font).horizontalAdvance(text)
        room = STRIP_WIDTH - 16  # the strip's margins and the label's own
        if width <= room or font.pointSizeF() <= 0:
            return ""
        return f"font-size: {max(6.0, font.pointSizeF() * room / width):.1f}pt;"

    def set_name_dim(self, dim: bool) -> None:
        """Grey the name (unavailable, muted or silenced by another stem's solo)."""
        style = self._name_fit + (f"color: {DIM_TEXT};" if dim else "")
        if self.available:
            style = "font-weight: bold;" + style
        if style != self._name_style:
            self._name_style = style
            self.name.setStyleSheet(style)

    def set_compact(self, compact: bool, force: bool = False) -> None:
        """Compact: a shorter meter, no pan readout, the gain readout next to M/S (for
        short mixer docks): the fader and its dB value always show."""
        if compact == self.compact and not force:
            return
        self.compact = compact
        self.pan_label.setVisible(not compact)
        self.gain_label.setVisible(not compact)
        self.compact_gain.setVisible(compact and bool(self.available))
        self.meter.setMinimumHeight(METER_MIN_COMPACT if compact else METER_MIN)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.available:
            self.clicked.emit(self.stem_id)
        super().mousePressEvent(event)

    def set_selected(self, selected: bool) -> None:
        value = "true" if selected else "false"
        if self.property("selected") == value:
            return
        self.setProperty("selected", value)
        self.style().unpolish(self)
        self.style().polish(self)

    def show_state(self, gain_db: float, pan: float, mute: bool, solo: bool) -> None:
        """Show a channel state without echoing signals back."""
        for w, setter, value in ((self.fader, self.fader.setValue, db_to_fader(gain_db)),
                                 (self.pan, self.pan.setValue, round(pan * 100)),
                                 (self.mute, self.mute.setChecked, mute),
                                 (self.solo, self.solo.setChecked, solo)):
            w.blockSignals(True)
            setter(value)
            w.blockSignals(False)
        if self.available:
            self.gain_label.setText(f"{format_gain(gain_db)} dB")
            self.compact_gain.setText(format_gain(gain_db))
            self.pan_label.setText(format_pan(pan))


class SlimStrip(QFrame):
    """One stem (or the master) in one short row: name and M/S, then a horizontal fader
    with its dB readout and a thin meter. The panel wires it to the full strip, whose
    controls hold the state."""

    clicked = Signal(str)

    def __init__(self, stem_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stem_id = stem_id
        master = stem_id == "master"
        name = "Master" if master else get_stem(stem_id).name
        self.color = "#e8ecf2" if master else get_stem(stem_id).color
        self._font = ""  # a smaller font size when the name is wider than its room
        self.available: bool | None = None
        self.setProperty("selected", "false")
        self.setMinimumWidth(SLIM_STRIP_MIN_WIDTH)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(5, 2, 5, 2)
        lay.setSpacing(2)
        top = QHBoxLayout()
        top.setSpacing(3)
        self.name = QLabel(SLIM_NAMES.get(stem_id, name), self)
        self.name.setToolTip(name)
        font = QFont(self.name.font())
        font.setBold(True)
        room = SLIM_STRIP_MIN_WIDTH - 10 - 2 * 22 - 2 * 3 - 4  # margins, M/S, spacing
        width = QFontMetrics(font).horizontalAdvance(self.name.text())
        if width > room and font.pointSizeF() > 0:
            self._font = f"font-size: {max(6.5, font.pointSizeF() * room / width):.1f}pt;"
        self.name.setMinimumWidth(20)
        self.name.setMinimumHeight(22)  # as tall as M/S: the master lines up with the stems
        self.name.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top.addWidget(self.name, 1)
        self.mute, self.solo = mute_solo_buttons(self, name)
        for button in (self.mute, self.solo):
            button.setVisible(not master)
            top.addWidget(button)
        lay.addLayout(top)
        row = QHBoxLayout()
        row.setSpacing(4)
        self.fader = ResetSlider(Qt.Orientation.Horizontal, 0, self)
        self.fader.setRange(int(FADER_FLOOR_DB * FADER_STEPS_PER_DB),
                            int(FADER_MAX_DB * FADER_STEPS_PER_DB))
        self.fader.setToolTip(f"{name} volume in dB (double-click: 0 dB)")
        self.fader.setMinimumWidth(50)
        self.gain = QLabel("0.0 dB", self)
        self.gain.setObjectName("slimGain")
        self.gain.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.gain.setFixedWidth(QFontMetrics(self.gain.font()).horizontalAdvance("-88.8 dB")
                                + 2)
        row.addWidget(self.fader, 1)
        row.addWidget(self.gain)
        lay.addLayout(row)
        self.meter = LevelMeter(self, width=3, horizontal=True)
        lay.addWidget(self.meter)
        self.set_available(True)

    def set_available(self, available: bool) -> None:
        """Live, or greyed "not produced by this model"."""
        available = bool(available)
        if available == self.available:
            return
        self.available = available
        self.setProperty("available", "true" if available else "false")
        for w in (self.mute, self.solo, self.fader, self.meter):
            w.setEnabled(available)
        if not available:
            for w in (self.mute, self.solo):
                w.blockSignals(True)
                w.setChecked(False)
                w.blockSignals(False)
            self.meter.reset()
        self.gain.setText("0.0 dB" if available else "n/a")
        self.gain.setToolTip("" if available else "Not produced by this model")
        self.set_name_dim(not available)
        self.style().unpolish(self)
        self.style().polish(self)

    def set_name_dim(self, dim: bool) -> None:
        style = f"font-weight: bold; {self._font} color: {DIM_TEXT if dim else self.color};"
        if style != self.name.styleSheet():  # a style sheet costs a re-polish
            self.name.setStyleSheet(style)

    def show_state(self, gain_db: float, mute: bool = False, solo: bool = False) -> None:
        """Show a channel's state without echoing signals back."""
        for w, setter, value in ((self.fader, self.fader.setValue, db_to_fader(gain_db)),
                                 (self.mute, self.mute.setChecked, mute),
                                 (self.solo, self.solo.setChecked, solo)):
            w.blockSignals(True)
            setter(value)
            w.blockSignals(False)
        if self.available:
            self.gain.setText(f"{format_gain(gain_db)} dB")

    def set_selected(self, selected: bool) -> None:
        value = "true" if selected else "false"
        if self.property("selected") == value:
            return
        self.setProperty("selected", value)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.available and self.stem_id != "master":
            self.clicked.emit(self.stem_id)
        super().mousePressEvent(event)


__all__ = ["FADER_MAX_DB", "FADER_STEPS_PER_DB", "METER_FLOOR_DB", "METER_TOP_DB",
           "METER_FALL_DB_PER_S", "PEAK_HOLD_S", "REFRESH_MS", "STRIP_WIDTH",
           "METER_MIN", "METER_MIN_COMPACT", "MASTER_SPACING", "MASTER_COMPACT_LABEL",
           "MASTER_SPACING_COMPACT", "SCROLL_MIN_HEIGHT", "SLIM_STRIP_MIN_WIDTH",
           "SLIM_NAMES", "PANEL_BG", "STRIP_BG", "STRIP_BG_SELECTED", "TEXT",
           "DIM_TEXT", "fader_to_db", "db_to_fader", "format_gain", "format_pan",
           "ResetSlider", "LevelMeter", "ChannelStrip", "SlimStrip"]
