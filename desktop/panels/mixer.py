"""The mixer: one strip per stem (mute, solo, fader, pan, meter), master, A/B and null test.

The panel only edits the player's `MixerState` through `Player.set_channel` and friends;
every gain computation lives in `models.mixing`. Meters are refreshed by a timer that
reads `Player.levels()` (peaks the audio callback collected), so the GUI never waits on
the audio thread.

Mouse: double-click a fader or pan slider to reset it; click a strip to select its stem.

The window sizes the mixer dock for full strips (`full_height_hint`); only a dock the
user makes shorter turns compact, and compact strips still show their fader and its dB
readout (next to M/S).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from PySide6.QtCore import QEvent, QRectF, QSize, Qt, QTimer, Signal
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
    QButtonGroup,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpacerItem,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.remix.mixer import FADER_FLOOR_DB, describe_null_test
from stemwright.models.stems import STEM_IDS, get_stem

from ..playback import Player

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

PANEL_BG = "#16181d"
STRIP_BG = "#1c1f26"
STRIP_BG_SELECTED = "#262b36"
TEXT = "#d8dee9"
DIM_TEXT = "#7c8493"

STYLE = f"""
MixerPanel, #mixerStrips {{ background: {PANEL_BG}; }}
ChannelStrip {{ background: {STRIP_BG}; border: 1px solid #2a2f3a; border-radius: 4px; }}
ChannelStrip[selected="true"] {{ background: {STRIP_BG_SELECTED}; border: 1px solid #5a86c8; }}
ChannelStrip[available="false"] {{ background: #17181b; border: 1px dashed #2a2d33; }}
QLabel {{ color: {TEXT}; }}
QLabel#dim {{ color: {DIM_TEXT}; }}
QLabel#notice {{ color: #f3c969; }}
QLabel#compactGain {{ color: {TEXT}; font-size: 8pt; }}
QPushButton#mute, QPushButton#solo {{
    min-width: 22px; max-width: 22px; min-height: 20px; max-height: 20px;
    padding: 0; border-radius: 3px; font-weight: bold;
    color: {TEXT}; background: #2b303b; border: 1px solid #3a404d; }}
QPushButton#mute:checked {{ background: #e05a47; color: #111; border-color: #e05a47; }}
QPushButton#solo:checked {{ background: #f2c94c; color: #111; border-color: #f2c94c; }}
QPushButton#mute:disabled, QPushButton#solo:disabled {{ color: #4a4f59; background: #1f2228; }}
QPushButton#ab {{ padding: 3px 10px; color: {TEXT}; background: #2b303b;
    border: 1px solid #3a404d; }}
QPushButton#ab:checked {{ background: #3d6fb6; border-color: #5a86c8; color: white; }}
QPushButton#ab:disabled {{ color: #4a4f59; }}
"""


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

    def __init__(self, parent: QWidget | None = None, width: int = 10) -> None:
        super().__init__(parent)
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
        self.mute = QPushButton("M", self)
        self.mute.setObjectName("mute")
        self.mute.setCheckable(True)
        self.mute.setToolTip(f"Mute {stem.name}")
        self.solo = QPushButton("S", self)
        self.solo.setObjectName("solo")
        self.solo.setCheckable(True)
        self.solo.setToolTip(f"Solo {stem.name} (only soloed stems play)")
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


class MixerPanel(QWidget):
    """Live mixer over a `Player`: stem strips, master, A/B (mixture/remix), null test.

    The six strips are built once and reused (`set_stems` only shows, hides or greys
    them). In a short dock the strips turn compact (no pan/gain readouts) and, shorter
    still, scroll vertically instead of being cut off.
    """

    selectedStemChanged = Signal(str)
    mixerChanged = Signal()
    abChanged = Signal(str)  # "mix" or "remix", whoever changed it

    def __init__(self, player: Player, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.player = player
        self.strips: dict[str, ChannelStrip] = {}
        self._all_strips: dict[str, ChannelStrip] = {}
        self.selected: str | None = None
        self.null_db: float | None = None
        self.compact = False
        self._master_spacer: QSpacerItem | None = None
        self.setStyleSheet(STYLE)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.setSpacing(6)

        top = QHBoxLayout()
        top.setSpacing(6)
        self._top_row = top
        top.addWidget(QLabel("Listen to:", self))
        self.ab_mix = QPushButton("A  Mixture", self)
        self.ab_remix = QPushButton("B  Remix", self)
        self.ab_group = QButtonGroup(self)
        self.ab_group.setExclusive(True)
        for b, tip in ((self.ab_mix, "The original song, untouched (B)"),
                       (self.ab_remix, "The stems through this mixer (B)")):
            b.setObjectName("ab")
            b.setCheckable(True)
            b.setToolTip(tip)
            self.ab_group.addButton(b)
            top.addWidget(b)
        self.ab_remix.setChecked(True)
        self.ab_mix.toggled.connect(self._on_ab)
        top.addSpacing(10)
        self.null_label = QLabel(describe_null_test(None), self)
        self.null_label.setToolTip(
            "Level of the song minus the sum of all stems, relative to the song. "
            "-inf dB: the stems add back up to the song exactly.")
        self.null_label.setMinimumWidth(40)
        self.null_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                      QSizePolicy.Policy.Preferred)
        top.addWidget(self.null_label, 1)
        top.addWidget(QLabel("Output:", self))
        self.device_combo = QComboBox(self)
        self.device_combo.setMinimumWidth(120)
        self.device_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_combo.setMinimumContentsLength(14)
        self.device_combo.activated.connect(self._on_device)
        top.addWidget(self.device_combo)
        outer.addLayout(top)

        self.notice = QLabel(self)
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        outer.addWidget(self.notice)

        # strips and master scroll together: sideways when the dock is narrow, up and
        # down when it is too short even for compact strips
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.scroll.setMinimumWidth(110)
        self.scroll.setMinimumHeight(SCROLL_MIN_HEIGHT)
        self.strip_host = QWidget()
        self.strip_host.setObjectName("mixerStrips")
        self.strip_row = QHBoxLayout(self.strip_host)
        self.strip_row.setContentsMargins(0, 0, 0, 0)
        self.strip_row.setSpacing(6)
        for stem_id in STEM_IDS:
            strip = ChannelStrip(stem_id, True, self.strip_host)
            strip.hide()
            self.strip_row.addWidget(strip)
            self._all_strips[stem_id] = strip
            self._wire(strip)
        self.strip_row.addStretch(1)
        self.master = self._build_master()
        self.strip_row.addWidget(self.master)
        self.scroll.setWidget(self.strip_host)
        self.scroll.viewport().installEventFilter(self)
        outer.addWidget(self.scroll, 1)
        self._full_height = self._strips_min_height(False)

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh_meters)
        self.player.stateChanged.connect(self._on_player_state)
        self.refresh_devices()
        self._update_notice()
        self.set_stems([], [], None)

    # -- building ---------------------------------------------------------------------
    def _build_master(self) -> QFrame:
        frame = QFrame(self.strip_host)
        frame.setObjectName("master")
        frame.setFixedWidth(STRIP_WIDTH)
        frame.setStyleSheet(f"QFrame#master {{ background: {STRIP_BG}; "
                            "border: 1px solid #3a404d; border-radius: 4px; }")
        lay = QVBoxLayout(frame)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        swatch = QFrame(frame)
        swatch.setFixedHeight(5)
        swatch.setStyleSheet("background: #e8ecf2; border: none; border-radius: 2px;")
        lay.addWidget(swatch)
        name = QLabel("Master", frame)
        name.setAlignment(Qt.AlignmentFlag.AlignCenter)
        name.setStyleSheet("font-weight: bold;")
        lay.addWidget(name)
        self.master_compact = QLabel("0.0 dB", frame)  # the readout of compact strips
        self.master_compact.setObjectName("compactGain")
        self.master_compact.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.master_compact.setFixedHeight(MASTER_COMPACT_LABEL)
        self.master_compact.setVisible(False)
        lay.addWidget(self.master_compact)
        # lines the fader up with the stem faders (buttons, pan, pan readout)
        self._master_spacer = QSpacerItem(0, MASTER_SPACING, QSizePolicy.Policy.Minimum,
                                          QSizePolicy.Policy.Fixed)
        lay.addItem(self._master_spacer)
        fader_row = QHBoxLayout()
        fader_row.setSpacing(6)
        self.master_fader = ResetSlider(Qt.Orientation.Vertical, 0, frame)
        self.master_fader.setRange(int(FADER_FLOOR_DB * FADER_STEPS_PER_DB),
                                   int(FADER_MAX_DB * FADER_STEPS_PER_DB))
        self.master_fader.setToolTip("Master volume in dB (double-click: 0 dB)")
        self.master_fader.valueChanged.connect(self._on_master)
        self.master_meter = LevelMeter(frame, width=14)
        fader_row.addStretch(1)
        fader_row.addWidget(self.master_fader)
        fader_row.addWidget(self.master_meter)
        fader_row.addStretch(1)
        lay.addLayout(fader_row, 1)
        self.master_label = QLabel("0.0 dB", frame)
        self.master_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.master_label)
        return frame

    # -- short docks: compact strips, then scrolling ------------------------------------
    def _strips_min_height(self, compact: bool) -> int:
        """Height strips and master need to show everything (in full or compact form),
        measured on a live and a greyed strip."""
        was = self.compact
        self.set_compact(compact)
        live, greyed = self._all_strips["vocals"], self._all_strips["wind"]
        greyed_was = greyed.available
        greyed.set_available(False)
        height = 0
        for widget in (live, greyed, self.master):
            widget.layout().activate()
            height = max(height, widget.minimumSizeHint().height())
        greyed.set_available(bool(greyed_was))
        self.set_compact(was)
        return height

    def full_height_hint(self, width: int | None = None) -> int:
        """Height the panel needs to show full strips (faders, meters, pan and dB
        readouts) without compacting or scrolling, at `width` (default: its own)."""
        outer = self.layout()
        margins = outer.contentsMargins()
        height = margins.top() + margins.bottom() + self._top_row.sizeHint().height()
        height += outer.spacing() + self._full_height
        if not self.notice.isHidden():
            text_width = max((width or self.width()) - margins.left() - margins.right(), 300)
            height += self.notice.heightForWidth(text_width) + outer.spacing()
        # room for a sideways scroll bar when the strips are wider than the dock
        return height + self.scroll.horizontalScrollBar().sizeHint().height() + 6

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_height(event.size().height())
        return super().eventFilter(obj, event)

    def _fit_height(self, height: int) -> None:
        """Compact strips when the full ones would not fit (with a little hysteresis)."""
        if self.compact:
            compact = height < self._full_height + 4
        else:
            compact = height < self._full_height
        self.set_compact(compact)

    def set_compact(self, compact: bool) -> None:
        """Compact strips: no pan/gain readouts, shorter meters (short mixer docks)."""
        if compact == self.compact:
            return
        self.compact = compact
        for strip in self._all_strips.values():
            strip.set_compact(compact)
        if self._master_spacer is not None:
            self._master_spacer.changeSize(0, MASTER_SPACING_COMPACT if compact
                                           else MASTER_SPACING, QSizePolicy.Policy.Minimum,
                                           QSizePolicy.Policy.Fixed)
        self.master_label.setVisible(not compact)
        self.master_compact.setVisible(compact)
        self.master_meter.setMinimumHeight(METER_MIN_COMPACT if compact else METER_MIN)
        self.master.layout().invalidate()
        self.strip_row.invalidate()

    # -- stems ------------------------------------------------------------------------
    def set_stems(self, available_ids: Iterable[str], unavailable_ids: Iterable[str],
                  null_db: float | None) -> None:
        """Show a strip per stem (unavailable ones greyed) and the null-test result.

        Cheap (well under a millisecond when the stems are the same as before): the six
        strips always exist and are only shown, hidden or greyed, never rebuilt.
        """
        available = [get_stem(s).id for s in available_ids]
        unavailable = [get_stem(s).id for s in unavailable_ids if get_stem(s).id
                       not in available]
        strips: dict[str, ChannelStrip] = {}
        for stem_id, strip in self._all_strips.items():  # canonical order
            shown = stem_id in available or stem_id in unavailable
            if shown:
                strip.set_available(stem_id in available)
                strips[stem_id] = strip
            if strip.isHidden() == shown:
                strip.setVisible(shown)
        self.strips = strips
        self.sync_from_player()
        self.set_null_db(null_db)
        self.ab_remix.setEnabled(bool(available))
        if not available:  # only the mixture can play; the player's choice is kept
            self.ab_mix.blockSignals(True)
            self.ab_mix.setChecked(True)
            self.ab_mix.blockSignals(False)
        if self.selected not in available:
            self.select_stem(None)

    def _wire(self, strip: ChannelStrip) -> None:
        sid = strip.stem_id
        strip.mute.toggled.connect(lambda on, s=sid: self._set(s, mute=on))
        strip.solo.toggled.connect(lambda on, s=sid: self._set(s, solo=on))
        strip.fader.valueChanged.connect(
            lambda v, s=sid: self._set(s, gain_db=fader_to_db(v)))
        strip.pan.valueChanged.connect(lambda v, s=sid: self._set(s, pan=v / 100.0))
        strip.clicked.connect(self.select_stem)

    def set_null_db(self, null_db: float | None) -> None:
        """Update the null-test readout."""
        self.null_db = null_db
        self.null_label.setText(describe_null_test(null_db))
        good = null_db is not None and null_db < -60
        style = "" if null_db is None else f"color: {'#7ed957' if good else '#f3c969'};"
        if style != self.null_label.styleSheet():
            self.null_label.setStyleSheet(style)

    # -- state ------------------------------------------------------------------------
    def sync_from_player(self) -> None:
        """Show the player's mixer state on every control (e.g. after a session load)."""
        mixer = self.player.mixer
        for stem_id, strip in self.strips.items():
            if not strip.available:
                continue
            ch = mixer.channel(stem_id)
            strip.show_state(ch.gain_db, ch.pan, ch.mute, ch.solo)
        self.master_fader.blockSignals(True)
        self.master_fader.setValue(db_to_fader(mixer.master_db))
        self.master_fader.blockSignals(False)
        self.master_label.setText(f"{format_gain(mixer.master_db)} dB")
        self.master_compact.setText(f"{format_gain(mixer.master_db)} dB")
        for b in (self.ab_mix, self.ab_remix):
            b.blockSignals(True)
        (self.ab_mix if mixer.source == "mix" else self.ab_remix).setChecked(True)
        for b in (self.ab_mix, self.ab_remix):
            b.blockSignals(False)
        self._dim_for_solo()

    def _set(self, stem_id: str, **changes: object) -> None:
        self.player.set_channel(stem_id, **changes)
        ch = self.player.mixer.channel(stem_id)
        self.strips[stem_id].show_state(ch.gain_db, ch.pan, ch.mute, ch.solo)
        self._dim_for_solo()
        self.mixerChanged.emit()

    def _dim_for_solo(self) -> None:
        """Grey the names of stems that are silent because of mute or another's solo."""
        mixer = self.player.mixer
        any_solo = any(mixer.channel(s).solo and not mixer.channel(s).mute
                       for s, st in self.strips.items() if st.available)
        for stem_id, strip in self.strips.items():
            if not strip.available:
                continue
            ch = mixer.channel(stem_id)
            strip.set_name_dim(ch.mute or (any_solo and not ch.solo))

    def toggle_mute(self, stem_id: str) -> None:
        """Flip a stem's mute (keyboard shortcut target)."""
        strip = self.strips.get(get_stem(stem_id).id)
        if strip is not None and strip.available:
            strip.mute.toggle()

    def toggle_solo(self, stem_id: str) -> None:
        """Flip a stem's solo (keyboard shortcut target)."""
        strip = self.strips.get(get_stem(stem_id).id)
        if strip is not None and strip.available:
            strip.solo.toggle()

    def select_stem(self, stem_id: str | None) -> None:
        """Highlight a strip and announce it (the window highlights its lane)."""
        if stem_id is not None:
            stem_id = get_stem(stem_id).id
        if stem_id == self.selected:
            return
        self.selected = stem_id
        for sid, strip in self._all_strips.items():
            strip.set_selected(sid == stem_id)
        if stem_id is not None:
            self.selectedStemChanged.emit(stem_id)

    def _on_master(self, value: int) -> None:
        db = fader_to_db(value)
        self.player.set_master_db(db)
        self.master_label.setText(f"{format_gain(db)} dB")
        self.master_compact.setText(f"{format_gain(db)} dB")
        self.mixerChanged.emit()

    def _on_ab(self, mix_checked: bool) -> None:
        source = "mix" if mix_checked else "remix"
        self.player.set_ab(source)
        self.mixerChanged.emit()
        self.abChanged.emit(source)

    def set_ab(self, source: str) -> None:
        """Select "mix" (A) or "remix" (B) from code or a shortcut."""
        (self.ab_mix if source == "mix" else self.ab_remix).setChecked(True)

    def toggle_ab(self) -> None:
        self.set_ab("remix" if self.player.mixer.source == "mix" else "mix")

    # -- devices and notice -----------------------------------------------------------
    def refresh_devices(self) -> None:
        """Fill the output device list (system default first)."""
        self.device_combo.clear()
        if not self.player.available:
            self.device_combo.addItem("No audio output", None)
            self.device_combo.setEnabled(False)
            return
        self.device_combo.setEnabled(True)
        self.device_combo.addItem("System default", None)
        for index, name in self.player.output_devices():
            self.device_combo.addItem(name, index)
        current = self.device_combo.findData(self.player.output_device())
        self.device_combo.setCurrentIndex(max(0, current))

    def _on_device(self, row: int) -> None:
        self.player.set_output_device(self.device_combo.itemData(row))

    def _update_notice(self) -> None:
        if self.player.available:
            self.notice.hide()
        else:
            self.notice.setText(f"Playback is off: {self.player.unavailable_reason}. "
                                "Separating, mixing and exporting still work.")
            self.notice.show()

    # -- meters -----------------------------------------------------------------------
    def refresh_meters(self) -> None:
        """Read the player's peaks and move the meters (called by the timer)."""
        levels = self.player.levels()
        for stem_id, strip in self.strips.items():
            if strip.available:
                strip.meter.set_level(levels.get(stem_id, -math.inf))
        self.master_meter.set_level(levels.get("master", -math.inf))
        if self.player.state() != "playing" and all(
                s.meter.level_db == -math.inf for s in self.strips.values()) and \
                self.master_meter.level_db == -math.inf:
            self._timer.stop()  # everything has fallen to the floor

    def _on_player_state(self, state: str) -> None:
        if state == "playing" and self.isVisible():
            self._timer.start()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self.player.state() == "playing":
            self._timer.start()

    def hideEvent(self, event) -> None:  # noqa: N802
        super().hideEvent(event)
        self._timer.stop()
