"""The pieces a waveform lane is made of: the mm:ss axis, the view box that turns mouse
gestures into seeks, loops and zooms, the M/S header buttons, the `Lane` record that
`WaveformView` (waveform.py) keeps per row, and `LaneDragging`: a lane's name dragged out
of the window (into a DAW or a file manager)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QDrag, QFont
from PySide6.QtWidgets import QApplication

from stemwright.models.stems import STEM_IDS

from .waveform_data import TIME_STEPS, Envelope, format_time

MIX_COLOR = "#b8c4d6"
AXIS_WIDTH = 56  # left axis width shared with the spectrogram so time lines up
BAR_MARK_COLOR = (243, 167, 18, 150)  # the ruler's bar marks: a faint amber
BAR_MARK_PX = 6


def format_peak(peak: float) -> str:
    """A lane's true level: "peak -12.3 dBFS", or "silent (-inf dBFS)"."""
    if peak <= 0.0 or not math.isfinite(peak):
        return "silent (-inf dBFS)"
    return f"peak {20.0 * math.log10(peak):.1f} dBFS"


class TimeAxis(pg.AxisItem):
    """Axis labelled in mm:ss with musical-ish steps (1, 2, 5, 10, 15, 30 s, 1 min...);
    with the song's bar lines (`set_bars`) it marks each bar with a short amber tick."""

    bars: np.ndarray | None = None

    def set_bars(self, bars: np.ndarray | None) -> None:
        """Mark these times (seconds) as bar lines on the ruler (None: none)."""
        self.bars = None if bars is None else np.asarray(bars, dtype=np.float64)
        self.picture = None  # drawn again with (or without) the marks
        self.update()

    def generateDrawSpecs(self, p):  # noqa: N802
        specs = super().generateDrawSpecs(p)
        bars = self.bars
        if specs is None or bars is None or not bars.size or \
                self.orientation not in ("top", "bottom"):
            return specs
        lo, hi = self.range
        bounds = self.mapRectFromParent(self.geometry())
        if hi <= lo or bounds.width() <= 0:
            return specs
        inside = bars[(bars >= lo) & (bars <= hi)]
        if inside.size > bounds.width() / 4:  # too dense to tell apart: no marks
            return specs
        scale = bounds.width() / (hi - lo)
        top = self.orientation == "top"
        y0 = bounds.bottom() if top else bounds.top()
        y1 = y0 - BAR_MARK_PX if top else y0 + BAR_MARK_PX
        pen = pg.mkPen(BAR_MARK_COLOR, width=1)
        for value in inside:
            x = bounds.left() + (value - lo) * scale
            specs[1].append((pen, QPointF(x, y0), QPointF(x, y1)))
        return specs

    def tickSpacing(self, minVal: float, maxVal: float, size: float):  # noqa: N802
        span = maxVal - minVal
        if span <= 0 or size <= 0:
            return [(1.0, 0.0)]
        target = span * 90.0 / size  # about one label per 90 px
        major = next((s for s in TIME_STEPS if s >= target), TIME_STEPS[-1])
        minor = major / 5 if str(major)[0] in "15" else major / 2
        if major == 15:
            minor = 5
        elif major == 30:
            minor = 10
        return [(major, 0.0), (minor, 0.0)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        return [format_time(v, spacing) for v in values]


# -- interaction -----------------------------------------------------------------------

class TimeViewBox(pg.ViewBox):
    """ViewBox with audio-editor mouse handling (x only; y fixed)."""

    sigSeek = Signal(float)
    sigLoopDrag = Signal(float, float, bool)  # start, end, finished
    sigClicked = Signal(object)  # the view box

    def __init__(self, y_range: tuple[float, float] = (-1.05, 1.05)) -> None:
        super().__init__(enableMenu=False, defaultPadding=0.0)
        self.setMouseEnabled(x=True, y=False)
        self.setYRange(*y_range, padding=0)
        self.enableAutoRange(x=False, y=False)

    def _x(self, scene_pos: QPointF) -> float:
        return float(self.mapSceneToView(scene_pos).x())

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigClicked.emit(self)
            self.sigSeek.emit(self._x(ev.scenePos()))
        else:
            ev.ignore()

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        button = ev.button()
        if button == Qt.MouseButton.LeftButton:
            ev.accept()
            x0, x = self._x(ev.buttonDownScenePos()), self._x(ev.scenePos())
            if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.sigLoopDrag.emit(min(x0, x), max(x0, x), bool(ev.isFinish()))
            else:
                if ev.isStart():
                    self.sigClicked.emit(self)
                self.sigSeek.emit(x)
        elif button in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton):
            ev.accept()
            self.translateBy(x=self._x(ev.lastScenePos()) - self._x(ev.scenePos()))
        else:
            ev.ignore()

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        horizontal = ev.orientation() == Qt.Orientation.Horizontal
        if horizontal or ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            ev.accept()
            (x0, x1), _ = self.viewRange()
            self.translateBy(x=-(ev.delta() / 120.0) * 0.1 * (x1 - x0))
        else:
            super().wheelEvent(ev, axis=0)


class HeaderButton(pg.TextItem):
    """A small M or S toggle in a lane's header (a click never seeks or selects)."""

    def __init__(self, text: str, on_color: str, callback, tip: str) -> None:
        super().__init__(text, color="#d8dee9", anchor=(0, 0),
                         fill=pg.mkBrush(43, 48, 59, 255), border=pg.mkPen((58, 64, 77)))
        self.on_color = on_color
        self.callback = callback
        self.checked = False
        font = QFont()
        font.setBold(True)
        font.setPointSize(8)
        self.setFont(font)
        self.setZValue(40)
        self.setToolTip(tip)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_checked(self, on: bool) -> None:
        if on == self.checked:
            return
        self.checked = on
        self.fill = pg.mkBrush(self.on_color if on else QColor(43, 48, 59))
        self.setColor("#111111" if on else "#d8dee9")
        self.update()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.callback()

    def mouseDragEvent(self, ev) -> None:  # noqa: N802
        ev.ignore()


def blank_axis(plot: pg.PlotItem) -> None:
    """No left axis, but the same left margin as the spectrogram's frequency axis (an
    empty layout column costs nothing to paint; a blank AxisItem still does)."""
    plot.hideAxis("left")
    plot.layout.setColumnFixedWidth(0, AXIS_WIDTH)


@dataclass
class Lane:
    """One row: the mixture or a stem."""

    key: str  # "mix" or a stem id
    plot: pg.PlotItem
    curve: pg.PlotCurveItem | None
    playhead: pg.InfiniteLine
    label: pg.TextItem
    envelope: Envelope | None
    region: pg.LinearRegionItem | None = None
    color: str = MIX_COLOR
    title: str = ""
    zero: pg.InfiniteLine | None = None
    in_layout: bool = True
    pending: pg.LinearRegionItem | None = None  # shades what is not separated yet
    info: str = ""  # extra label text (e.g. scores), shown while the lane draws info_for
    info_for: object = None
    note: str = ""  # what the label says instead of the level (pending, not produced)
    dim: bool = False
    scale: float = 0.0  # the y half-range drawn now
    peak_text: str = ""  # the true level in the header ("peak -12.3 dBFS")
    base_height: int = 0  # an extra lane's requested height
    muted: bool = False  # the mixer's state, shown on the lane
    soloed: bool = False
    greyed: bool = False  # muted, or silenced by another stem's solo
    mute_button: HeaderButton | None = None
    solo_button: HeaderButton | None = None

    @property
    def available(self) -> bool:
        return self.envelope is not None


DRAG_TIP = ("Drag into a DAW or a folder: a WAV of this lane (hold Shift or Alt as the drag "
            "starts: as heard, with its fader and pan)")
#: either asks for "as heard": Alt+drag moves windows in many Linux window managers
AS_HEARD_MODIFIERS = Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ShiftModifier


class LaneDragging:
    """The drag-out part of `WaveformView` (it provides `lanes`): pressing a lane's name
    (the mixture, or a stem that is drawn) and moving starts a drag whose mime data
    `lane_drag(key, as_heard)` builds (None: no drag); Shift or Alt held: "as heard". A press
    that does not become a drag is a click, as before (seek, select)."""

    lane_drag = None  # callable(key, as_heard) -> QMimeData | None
    _drag_press: tuple | None = None  # key, position, the press event (replayed on click)

    def set_lane_drag(self, source) -> None:
        """Let lanes be dragged out; `source(key, as_heard)` gives the mime data or None."""
        self.lane_drag = source
        for lane in self.lanes:
            if lane.key == "mix" or lane.key in STEM_IDS:
                lane.label.setToolTip(DRAG_TIP if source is not None else "")
                lane.label.setCursor(Qt.CursorShape.OpenHandCursor)

    def drag_key_at(self, pos: QPoint) -> str | None:
        """The lane whose name is under `pos` (widget coordinates), if it can be dragged."""
        if self.lane_drag is None:
            return None
        scene_pos = self.mapToScene(pos)
        for lane in self.lanes:
            if (lane.key == "mix" or lane.key in STEM_IDS) and lane.available and \
                    lane.label.isVisible() and lane.label.sceneBoundingRect().contains(scene_pos):
                return lane.key
        return None

    def mousePressEvent(self, ev) -> None:  # noqa: N802
        pos = ev.position().toPoint()
        key = self.drag_key_at(pos) if ev.button() == Qt.MouseButton.LeftButton else None
        self._drag_press = None if key is None else (key, pos, ev.clone())
        if key is None:
            super().mousePressEvent(ev)
        else:
            ev.accept()

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802
        press = self._drag_press
        if press is None:
            super().mouseMoveEvent(ev)
            return
        ev.accept()
        if (ev.position().toPoint() - press[1]).manhattanLength() >= \
                QApplication.startDragDistance():
            self._drag_press = None
            as_heard = bool((ev.modifiers() | press[2].modifiers()) & AS_HEARD_MODIFIERS)
            self.start_lane_drag(press[0], as_heard)

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802
        press = self._drag_press
        if press is None:
            super().mouseReleaseEvent(ev)
            return
        self._drag_press = None  # a click on the name: what a click there did before
        super().mousePressEvent(press[2])
        super().mouseReleaseEvent(ev)

    def start_lane_drag(self, key: str, as_heard: bool = False) -> Qt.DropAction | None:
        """Drag lane `key` out (blocks until dropped); None when it gives no drag."""
        mime = self.lane_drag(key, as_heard) if self.lane_drag is not None else None
        if mime is None:
            return None
        drag = QDrag(self)
        drag.setMimeData(mime)
        return drag.exec(Qt.DropAction.CopyAction)
