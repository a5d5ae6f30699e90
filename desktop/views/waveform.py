"""Waveform views: a whole-song navigator, the mixture, and one lane per stem.

Drawing is cheap whatever the song length: `Envelope.compute` (in `waveform_data`, run in
a worker) builds a min/max pyramid once, and each redraw takes only about two points per
screen pixel from the right level. The mixture and the lanes share one x axis (linked
views), with a mm:ss ruler on top, a playhead in every lane, a loop region and mouse
seeking:

* click: seek; drag: scrub; Shift+drag: draw a loop region (its edges can be dragged);
* wheel: zoom around the pointer; Shift+wheel (or a horizontal wheel): scroll;
* right or middle drag: pan; the navigator's box can be dragged to scroll.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont

from stemwright.models.stems import STEM_IDS, get_stem

from .waveform_data import TIME_STEPS, Envelope, format_time

BACKGROUND = "#16181d"
LANE_BG = "#1c1f26"
LANE_BG_SELECTED = "#262b36"
UNAVAILABLE_BG = "#17181b"
MIX_COLOR = "#b8c4d6"
PLAYHEAD_COLOR = "#ffffff"
LOOP_BRUSH = (90, 160, 255, 45)
LOOP_PEN = (120, 180, 255, 200)
PENDING_BRUSH = (10, 11, 14, 170)  # over the part of a stem lane not separated yet
EMPTY_MESSAGE = ("Open a song: drop a file here, press Ctrl+O, or try File > Open the demo "
                 "song")
AXIS_WIDTH = 56  # left axis width shared with the spectrogram so time lines up
LANE_ROWS = 4  # layout rows per stem: its lane, then room for extra lanes under it


class TimeAxis(pg.AxisItem):
    """Axis labelled in mm:ss with musical-ish steps (1, 2, 5, 10, 15, 30 s, 1 min...)."""

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


def _blank_axis(plot: pg.PlotItem) -> None:
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

    @property
    def available(self) -> bool:
        return self.envelope is not None


class WaveformView(pg.GraphicsLayoutWidget):
    """Navigator + mixture + stem lanes with a shared, zoomable time axis."""

    seekRequested = Signal(float)
    loopChanged = Signal(object)  # (start, end) or None
    stemSelected = Signal(str)
    viewRangeChanged = Signal(float, float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground(BACKGROUND)
        self.ci.layout.setContentsMargins(4, 4, 8, 4)
        self.ci.layout.setVerticalSpacing(3)
        self.duration = 0.0
        self.samplerate = 44100
        self._loop: tuple[float, float] | None = None
        self._playhead = 0.0
        self._selected = ""
        self._syncing = False
        self._y_peak = 1.05
        self._pending: float | None = None  # stems are final only before this time
        self.lanes: list[Lane] = []
        self._extra: dict[str, Lane] = {}  # lanes under a stem lane (set_extra_lane)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(0)
        self._redraw_timer.timeout.connect(self.redraw)
        self._nav_timer = QTimer(self)  # a child timer dies with the view (no stale calls)
        self._nav_timer.setSingleShot(True)
        self._nav_timer.setInterval(0)
        self._nav_timer.timeout.connect(self._draw_navigator)

        # navigator: the whole song, with a box for the visible range
        self.nav_vb = TimeViewBox()
        self.navigator = pg.PlotItem(viewBox=self.nav_vb)
        self.navigator.hideButtons()
        self.navigator.hideAxis("bottom")
        _blank_axis(self.navigator)
        self.navigator.setFixedHeight(38)
        self.nav_vb.setBackgroundColor(UNAVAILABLE_BG)
        self.nav_curve = pg.PlotCurveItem(pen=pg.mkPen("#6f7c8f"), antialias=False,
                                          skipFiniteCheck=True)
        self.navigator.addItem(self.nav_curve)
        self.nav_box = pg.LinearRegionItem((0, 1), brush=(255, 255, 255, 28),
                                           pen=pg.mkPen((255, 255, 255, 90)))
        self.nav_box.setZValue(10)
        self.navigator.addItem(self.nav_box)
        self.nav_playhead = pg.InfiniteLine(0, pen=pg.mkPen(PLAYHEAD_COLOR, width=1))
        self.nav_playhead.setZValue(20)
        self.navigator.addItem(self.nav_playhead)
        self.nav_loop = pg.LinearRegionItem((0, 0), movable=False, brush=LOOP_BRUSH,
                                            pen=pg.mkPen(None))
        self.nav_loop.setVisible(False)
        self.navigator.addItem(self.nav_loop)
        self.nav_vb.sigSeek.connect(self._nav_seek)
        self.nav_vb.sigLoopDrag.connect(self._loop_drag)
        self.nav_vb.setMouseEnabled(x=False, y=False)
        self.nav_box.sigRegionChanged.connect(self._nav_box_moved)
        self.addItem(self.navigator, row=0, col=0)

        self.mix = self._make_lane("mix", "Mixture", MIX_COLOR, row=1)
        self.mix_vb.sigXRangeChanged.connect(self._range_changed)
        self.mix_vb.sigResized.connect(lambda *_: self.schedule_redraw())
        time_axis = TimeAxis("top")
        self.mix.plot.setAxisItems({"top": time_axis})
        self.mix.plot.showAxis("top")
        time_axis.setStyle(tickTextOffset=2, showValues=False)  # shown once a song is open
        time_axis.setTextPen("#aab2bf")
        self.time_axis = time_axis
        self.ci.layout.setRowStretchFactor(1, 3)
        self.mix.plot.setMinimumHeight(64)
        # stem lanes are built once (hidden) so showing stems costs no item creation
        self._stem_lanes: dict[str, Lane] = {}
        self._rows: dict[str, int] = {}
        for i, stem_id in enumerate(STEM_IDS):
            row = 2 + LANE_ROWS * i
            stem = get_stem(stem_id)
            self._stem_lanes[stem_id] = self._make_lane(stem_id, stem.name, stem.color, row)
            self._rows[stem_id] = row
            self._configure_stem_lane(self._stem_lanes[stem_id], None, "hidden")
        self.set_empty_message(EMPTY_MESSAGE)

    # -- building ---------------------------------------------------------------------
    @property
    def mix_vb(self) -> TimeViewBox:
        return self.mix.plot.getViewBox()

    def _make_lane(self, key: str, title: str, color: str, row: int) -> Lane:
        vb = TimeViewBox()
        plot = pg.PlotItem(viewBox=vb)
        plot.hideButtons()
        plot.hideAxis("bottom")
        _blank_axis(plot)
        plot.setClipToView(False)
        vb.setBackgroundColor(LANE_BG)
        if key != "mix":
            vb.setXLink(self.mix_vb)
        curve = pg.PlotCurveItem(pen=pg.mkPen(color, width=1), antialias=False,
                                 skipFiniteCheck=True, connect="all")
        plot.addItem(curve)
        zero = pg.InfiniteLine(0, angle=0, pen=pg.mkPen((255, 255, 255, 25)))
        plot.addItem(zero)
        label = pg.TextItem(anchor=(0, 0), fill=pg.mkBrush(22, 24, 29, 170))
        label.setParentItem(vb)
        label.setPos(6, 3)
        label.setZValue(30)
        playhead = pg.InfiniteLine(self._playhead, pen=pg.mkPen(PLAYHEAD_COLOR, width=1.5))
        playhead.setZValue(20)
        plot.addItem(playhead)
        lane = Lane(key, plot, curve, playhead, label, None, color=color, title=title)
        lane.zero = zero
        self._set_label(lane)
        vb.sigSeek.connect(self._seek)
        vb.sigLoopDrag.connect(self._loop_drag)
        vb.sigClicked.connect(lambda _vb, k=key: self._lane_clicked(k))
        self.addItem(plot, row=row, col=0)
        self.lanes.append(lane)
        return lane

    @staticmethod
    def _set_label(lane: Lane, note: str = "", dim: bool = False) -> None:
        color = "#6b7280" if dim else lane.color
        html = f'<span style="color:{color}; font-weight:600">{_escape(lane.title)}</span>'
        if note:
            html += f'<span style="color:#7d8594">&nbsp;&nbsp;{_escape(note)}</span>'
        elif lane.info and lane.envelope is lane.info_for:
            html += f'<span style="color:#c3cad6">&nbsp;&nbsp;{_escape(lane.info)}</span>'
        lane.label.setHtml(html)

    def _configure_stem_lane(self, lane: Lane, envelope: Envelope | None, state: str,
                             note: str = "") -> None:
        """state: "available" (drawn), "unavailable" (thin grey row) or "hidden"."""
        lane.envelope = envelope if state == "available" else None
        plot, vb = lane.plot, lane.plot.getViewBox()
        layout = self.ci.layout
        if state == "hidden":
            plot.setVisible(False)
            lane.curve.setData([], [])
            self._drop_region(lane)
            self._show_pending(lane, False)
            if lane.in_layout:  # a hidden item's row would still take space
                layout.removeItem(plot)
                lane.in_layout = False
            return
        available = state == "available"
        if not lane.in_layout:
            layout.addItem(plot, self._rows[lane.key], 0)
            lane.in_layout = True
        plot.setVisible(True)
        vb.setYRange(-self._y_peak, self._y_peak, padding=0)
        lane.curve.setVisible(available)
        lane.zero.setVisible(available)
        lane.playhead.setVisible(available)
        if available:
            plot.setMinimumHeight(30)
            plot.setMaximumHeight(16777215)
            vb.setBackgroundColor(LANE_BG_SELECTED if lane.key == self._selected else LANE_BG)
            lane.label.setPos(6, 3)
            self._set_label(lane)
            if self._loop is not None:
                self._ensure_region(lane).setRegion(self._loop)
            self._show_pending(lane)
        else:
            lane.curve.setData([], [])
            plot.setFixedHeight(22)
            vb.setBackgroundColor(UNAVAILABLE_BG)
            lane.label.setPos(6, 1)
            self._set_label(lane, note, dim=True)
            self._drop_region(lane)
            self._show_pending(lane, False)

    # -- stems still being separated -----------------------------------------------------
    def set_pending(self, final_until: float | None) -> None:
        """Shade the stem lanes after `final_until` seconds (not separated yet) and say how
        far they are ready; None: everything is final."""
        self._pending = None if final_until is None else float(final_until)
        for lane in self._stem_lanes.values():
            self._show_pending(lane, lane.available)

    def pending(self) -> float | None:
        """Seconds up to which the stems are final while separating (None: all)."""
        return self._pending

    def _show_pending(self, lane: Lane, show: bool = True) -> None:
        active = show and self._pending is not None and self._pending < self.duration
        if not active:
            if lane.pending is not None:
                lane.pending.setVisible(False)
                if lane.available:
                    self._set_label(lane)
            return
        if lane.pending is None:
            lane.pending = pg.LinearRegionItem((0, 0), movable=False, brush=PENDING_BRUSH,
                                               pen=pg.mkPen(None))
            lane.pending.setZValue(8)
            lane.pending.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            lane.plot.addItem(lane.pending)
        lane.pending.setRegion((self._pending, self.duration))
        lane.pending.setVisible(True)
        self._set_label(lane, f"separating — ready up to {format_time(self._pending)}")

    def _drop_region(self, lane: Lane) -> None:
        if lane.region is not None:
            lane.plot.removeItem(lane.region)
            lane.region = None

    def set_empty_message(self, text: str) -> None:
        """Text shown in the mixture lane while no song is loaded."""
        if not hasattr(self, "_empty"):
            self._empty = pg.TextItem(anchor=(0.5, 0.5), color="#7d8594")
            font = QFont()
            font.setPointSize(11)
            self._empty.setFont(font)
            self._empty.setParentItem(self.mix_vb)
            self.mix_vb.sigResized.connect(self._place_empty)
        self._empty.setText(text)
        self._empty.setVisible(bool(text))
        self._place_empty()

    def _place_empty(self, *_args) -> None:
        rect = self.mix_vb.boundingRect()
        self._empty.setPos(rect.center())

    # -- song and stems ---------------------------------------------------------------
    def set_song(self, envelope: Envelope, title: str = "Mixture") -> None:
        """Show a new mixture (drops any stem lanes and the loop)."""
        self._pending = None
        self.clear_stems()
        for key in list(self._extra):
            self.remove_extra_lane(key)
        self.clear_loop(emit=False)
        self.mix.envelope = envelope
        self.samplerate = envelope.samplerate
        self.duration = max(envelope.duration, 1.0 / envelope.samplerate)
        self.mix.title = title
        self._set_label(self.mix)
        # every lane uses the mixture's scale: loud songs fill the lanes, quiet ones are
        # not lost in the middle, and stems keep their level relative to the song
        self._y_peak = max(envelope.peak, 0.02) * 1.08
        for lane in self.lanes:
            lane.plot.getViewBox().setYRange(-self._y_peak, self._y_peak, padding=0)
        self.nav_vb.setYRange(-self._y_peak, self._y_peak, padding=0)
        self.set_empty_message("")
        self.time_axis.setStyle(showValues=True)
        min_range = min(self.duration, 64 / self.samplerate)
        for vb in (self.mix_vb, self.nav_vb):
            vb.setLimits(xMin=0, xMax=self.duration, minXRange=min_range)
        self.nav_vb.setXRange(0, self.duration, padding=0)
        self.nav_box.setBounds((0, self.duration))
        self.set_playhead(0.0)
        self.zoom_fit()
        self.redraw()
        self._draw_navigator()

    def clear(self) -> None:
        """Back to the empty state."""
        self._pending = None
        self.clear_stems()
        for key in list(self._extra):
            self.remove_extra_lane(key)
        self.clear_loop(emit=False)
        self.mix.envelope = None
        self.duration = 0.0
        if self.mix.curve is not None:
            self.mix.curve.setData([], [])
        self.nav_curve.setData([], [])
        self.time_axis.setStyle(showValues=False)
        self.set_empty_message(EMPTY_MESSAGE)

    def set_stems(self, envelopes: dict[str, Envelope], unavailable: tuple[str, ...] = (),
                  model_title: str = "this model") -> None:
        """One lane per canonical stem: drawn if produced, a thin 'unavailable' row if not."""
        for stem_id in STEM_IDS:
            self.set_stem(stem_id, envelopes.get(stem_id), stem_id in unavailable,
                          model_title)

    def set_stem(self, stem_id: str, envelope: Envelope | None, unavailable: bool = False,
                 model_title: str = "this model") -> None:
        """Show one stem's lane (the window shows lanes one per event-loop turn)."""
        lane = self._stem_lanes[stem_id]
        if envelope is not None:
            self._configure_stem_lane(lane, envelope, "available")
            self.ci.layout.setRowStretchFactor(self._rows[stem_id], 2)
        elif unavailable:
            self._configure_stem_lane(lane, None, "unavailable",
                                      f"not produced by {model_title}")
            self.ci.layout.setRowStretchFactor(self._rows[stem_id], 0)
        else:
            self._configure_stem_lane(lane, None, "hidden")
            self.ci.layout.setRowStretchFactor(self._rows[stem_id], 0)
        lane.playhead.setValue(self._playhead)
        self._update_minimum_height()
        if envelope is not None and self.mix.envelope is not None:
            x0, x1 = self.view_range()
            lane.curve.setData(*envelope.slice(x0, x1, max(int(self.mix_vb.width()), 100)))

    def clear_stems(self) -> None:
        """Hide every stem lane (the mixture stays)."""
        for stem_id, lane in self._stem_lanes.items():
            self._configure_stem_lane(lane, None, "hidden")
            self.ci.layout.setRowStretchFactor(self._rows[stem_id], 0)  # empty rows take
        self.ci.layout.invalidate()                                      # no space
        self._update_minimum_height()

    def _update_minimum_height(self) -> None:
        """Never let a splitter squeeze the lanes below their minimum (they would clip)."""
        self.ci.layout.invalidate()
        hint = self.ci.effectiveSizeHint(Qt.SizeHint.MinimumSize)
        self.setMinimumHeight(int(hint.height()) + 10)

    def stem_lanes(self) -> dict[str, Lane]:
        """The visible stem lanes (available or marked unavailable), by stem id."""
        return {k: ln for k, ln in self._stem_lanes.items() if ln.plot.isVisible()}

    # -- extra lanes under a stem (references, error signals: see reference_lanes.py) ---
    def set_extra_lane(self, key: str, under: str, slot: int, title: str, color: str,
                       envelope: Envelope, height: int = 30) -> Lane:
        """Show (or update) a thin lane `key` in row `slot` (1..LANE_ROWS-1) under the lane
        of stem `under`; it scrolls, zooms, loops and seeks like the others. Opening
        another song removes it."""
        if not 1 <= slot < LANE_ROWS:
            raise ValueError(f"slot must be 1..{LANE_ROWS - 1}")
        lane = self._extra.get(key)
        if lane is None:
            lane = self._make_lane(key, title, color, self._rows[under] + slot)
            self._extra[key] = lane
        lane.title, lane.envelope = title, envelope
        lane.plot.getViewBox().setYRange(-self._y_peak, self._y_peak, padding=0)
        lane.plot.setFixedHeight(height)
        lane.label.setPos(6, 1)
        self._set_label(lane)
        lane.playhead.setValue(self._playhead)
        if self._loop is not None:
            self._ensure_region(lane).setRegion(self._loop)
        self._update_minimum_height()
        self.schedule_redraw()
        return lane

    def remove_extra_lane(self, key: str) -> None:
        """Take away an extra lane (nothing if there is none)."""
        lane = self._extra.pop(key, None)
        if lane is None:
            return
        self.lanes.remove(lane)
        lane.plot.getViewBox().setXLink(None)
        self.removeItem(lane.plot)
        self._update_minimum_height()

    def extra_lanes(self) -> dict[str, Lane]:
        """The extra lanes shown, by key."""
        return dict(self._extra)

    def set_lane_info(self, key: str, text: str, envelope: Envelope | None = None) -> None:
        """Extra text on a lane's label (e.g. its scores), shown while the lane draws
        `envelope` (default: what it draws now): a new separation's stems drop it."""
        lane = self._stem_lanes.get(key) or self._extra.get(key)
        if lane is None:
            return
        lane.info = text
        lane.info_for = envelope if envelope is not None else lane.envelope
        pending = lane.pending is not None and lane.pending.isVisible()
        if lane.available and not pending:
            self._set_label(lane)

    # -- drawing ----------------------------------------------------------------------
    def schedule_redraw(self) -> None:
        self._redraw_timer.start()

    def view_range(self) -> tuple[float, float]:
        (x0, x1), _ = self.mix_vb.viewRange()
        return float(x0), float(x1)

    def redraw(self) -> None:
        """Recompute the visible points of every lane (a min/max pair per pixel)."""
        if self.mix.envelope is None or getattr(self, "closed", False):
            return
        x0, x1 = self.view_range()
        width = max(int(self.mix_vb.width()), 100)
        for lane in self.lanes:
            if lane.envelope is None or lane.curve is None:
                continue
            x, y = lane.envelope.slice(x0, x1, width)
            lane.curve.setData(x, y)

    def _draw_navigator(self) -> None:
        env = self.mix.envelope
        if env is None or getattr(self, "closed", False):
            return
        x, y = env.slice(0, env.duration, max(int(self.nav_vb.width()), 400))
        self.nav_curve.setData(x, y)

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        mix = getattr(self, "mix", None)
        if mix is not None and mix.envelope is not None:
            self._nav_timer.start()

    def _range_changed(self, *_args) -> None:
        x0, x1 = self.view_range()
        if not self._syncing:
            self._syncing = True
            self.nav_box.setRegion((x0, x1))
            self._syncing = False
        self.schedule_redraw()
        self.viewRangeChanged.emit(x0, x1)

    def _nav_box_moved(self) -> None:
        if self._syncing or self.mix.envelope is None:
            return
        x0, x1 = self.nav_box.getRegion()
        self._syncing = True
        self.mix_vb.setXRange(x0, x1, padding=0)
        self._syncing = False

    # -- zoom and scroll --------------------------------------------------------------
    def set_view_range(self, x0: float, x1: float) -> None:
        self.mix_vb.setXRange(x0, x1, padding=0)

    def zoom_fit(self) -> None:
        if self.duration > 0:
            self.mix_vb.setXRange(0, self.duration, padding=0)

    def zoom(self, factor: float, centre: float | None = None) -> None:
        """Zoom by `factor` (>1 zooms in) around `centre` (the playhead if visible)."""
        if self.duration <= 0:
            return
        x0, x1 = self.view_range()
        if centre is None:
            centre = self._playhead if x0 <= self._playhead <= x1 else (x0 + x1) / 2
        span = (x1 - x0) / factor
        frac = (centre - x0) / max(x1 - x0, 1e-12)
        new0 = centre - frac * span
        self.mix_vb.setXRange(new0, new0 + span, padding=0)

    def scroll(self, pages: float) -> None:
        """Scroll by a fraction of the visible width (negative: left)."""
        x0, x1 = self.view_range()
        self.mix_vb.translateBy(x=pages * (x1 - x0))

    def ensure_visible(self, seconds: float) -> None:
        """Page the view so `seconds` is visible (used to follow the playhead)."""
        x0, x1 = self.view_range()
        span = x1 - x0
        if span <= 0 or span >= self.duration:
            return
        if seconds > x1 or seconds < x0:
            start = min(max(0.0, seconds - 0.02 * span), self.duration - span)
            self.mix_vb.setXRange(start, start + span, padding=0)

    # -- playhead and seeking ---------------------------------------------------------
    def set_playhead(self, seconds: float) -> None:
        self._playhead = float(seconds)
        for lane in self.lanes:
            lane.playhead.setValue(self._playhead)
        self.nav_playhead.setValue(self._playhead)

    def playhead(self) -> float:
        return self._playhead

    def _clamp(self, seconds: float) -> float:
        return min(max(0.0, seconds), self.duration)

    def _seek(self, seconds: float) -> None:
        if self.duration > 0:
            self.seekRequested.emit(self._clamp(seconds))

    def _nav_seek(self, seconds: float) -> None:
        if self.duration <= 0:
            return
        self._seek(seconds)
        self.ensure_visible(self._clamp(seconds))

    # -- loop region ------------------------------------------------------------------
    def loop(self) -> tuple[float, float] | None:
        return self._loop

    def set_loop(self, start: float, end: float, emit: bool = True) -> None:
        """Show a loop region from `start` to `end` seconds."""
        start, end = sorted((self._clamp(start), self._clamp(end)))
        if end - start < 1e-3:
            return
        self._loop = (start, end)
        self._syncing = True
        for lane in self.lanes:
            if lane.available or lane.key == "mix":
                self._ensure_region(lane).setRegion(self._loop)
        self._syncing = False
        self.nav_loop.setRegion(self._loop)
        self.nav_loop.setVisible(True)
        if emit:
            self.loopChanged.emit(self._loop)

    def clear_loop(self, emit: bool = True) -> None:
        had = self._loop is not None
        self._loop = None
        for lane in self.lanes:
            if lane.region is not None:
                lane.plot.removeItem(lane.region)
                lane.region = None
        self.nav_loop.setVisible(False)
        if emit and had:
            self.loopChanged.emit(None)

    def _ensure_region(self, lane: Lane) -> pg.LinearRegionItem:
        if lane.region is None:
            values = self._loop or (0.0, 0.0)
            region = pg.LinearRegionItem(values, brush=LOOP_BRUSH, pen=pg.mkPen(LOOP_PEN),
                                         hoverBrush=(90, 160, 255, 70))
            region.setZValue(5)
            region.sigRegionChanged.connect(lambda r=region: self._region_moved(r))
            region.sigRegionChangeFinished.connect(self._region_finished)
            lane.plot.addItem(region)
            lane.region = region
        return lane.region

    def _region_moved(self, region: pg.LinearRegionItem) -> None:
        if self._syncing:
            return
        self._syncing = True
        values = region.getRegion()
        for lane in self.lanes:
            if lane.region is not None and lane.region is not region:
                lane.region.setRegion(values)
        self.nav_loop.setRegion(values)
        self._syncing = False

    def _region_finished(self, region: pg.LinearRegionItem) -> None:
        if self._syncing:
            return
        start, end = region.getRegion()
        self.set_loop(start, end, emit=True)

    def _loop_drag(self, start: float, end: float, finished: bool) -> None:
        if self.duration <= 0:
            return
        start, end = self._clamp(start), self._clamp(end)
        if end - start < 1e-3:
            return
        self.set_loop(start, end, emit=finished)

    # -- selection --------------------------------------------------------------------
    def _lane_clicked(self, key: str) -> None:
        if key != "mix":
            lane = self.stem_lanes().get(key)
            if lane is not None and lane.available:
                self.select_stem(key)
                self.stemSelected.emit(key)

    def select_stem(self, stem_id: str) -> None:
        """Highlight the lane of `stem_id` (the target of mute/solo shortcuts)."""
        self._selected = stem_id
        for lane in self.lanes:
            if lane.key == "mix":
                continue
            bg = (LANE_BG_SELECTED if lane.key == stem_id else LANE_BG) if lane.available \
                else UNAVAILABLE_BG
            lane.plot.getViewBox().setBackgroundColor(QColor(bg))

    def selected_stem(self) -> str:
        return self._selected


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
