"""Waveform views: a whole-song navigator, the mixture, and one lane per stem.

Drawing is cheap whatever the song length: `Envelope.compute` (in `waveform_data`, run in
a worker) builds a min/max pyramid once, and each redraw takes only about two points per
screen pixel from the right level. The mixture and the lanes share one x axis (linked
views), with a mm:ss ruler on top, a playhead in every lane, a loop region and mouse
seeking:

* click: seek; drag: scrub; Shift+drag: draw a loop region (its edges can be dragged);
* wheel: zoom around the pointer; Shift+wheel (or a horizontal wheel): scroll;
* right or middle drag: pan; the navigator's box can be dragged to scroll;
* Ctrl+wheel: taller or shorter lanes (`set_lane_height`; the window scrolls them).

Once the song's beat grid is known (`set_beat_grid`), bar lines are drawn faintly on the
navigator and the mixture's ruler (beats too when zoomed in), and loop edges snap to the
nearest beat while `snap` is on: hold Shift while dragging an edge (Ctrl while drawing a
loop with Shift+drag) to place it freely.

Each lane is scaled to its own peak (`set_normalise`), so a quiet stem is not a flat line,
and its header says its true level (peak dBFS, "silent" when it is all zeros). Stem lanes
carry M/S buttons in their header (`muteClicked`/`soloClicked`); the window's mixer state
decides how they look (`set_lane_mix_state`: muted or silenced lanes are greyed). A lane's
name can be dragged out into a DAW (`set_lane_drag`, `LaneDragging` in lane_items.py).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont

from stemwright.models.stems import STEM_IDS, get_stem

from .beat_grid import BeatGrid
from .lane_items import (
    MIX_COLOR,
    HeaderButton,
    Lane,
    LaneDragging,
    TimeAxis,
    TimeViewBox,
    blank_axis,
    format_peak,
)
from .lane_spectrogram import LaneSpectra
from .loop_snap import BAR_PEN, BEAT_PEN, LoopSnapping, grid_curve, held_modifiers
from .waveform_data import Envelope, format_time

BACKGROUND = "#16181d"
LANE_BG = "#1c1f26"
LANE_BG_SELECTED = "#262b36"
UNAVAILABLE_BG = "#17181b"
PLAYHEAD_COLOR = "#ffffff"
LOOP_BRUSH = (90, 160, 255, 45)
LOOP_PEN = (120, 180, 255, 200)
PENDING_BRUSH = (10, 11, 14, 170)  # over the part of a stem lane not separated yet
EMPTY_MESSAGE = ("Open a song: drop a file here, press Ctrl+O, or try File > Open the demo "
                 "song")
LANE_ROWS = 4  # layout rows per stem: its lane, then room for extra lanes under it
LANE_HEIGHT = 64  # px: a stem lane's default (minimum) height
LANE_HEIGHT_MIN, LANE_HEIGHT_MAX = 40, 240
LANE_HEIGHT_STEP = 8
SILENT_PEAK = 10 ** (-120 / 20)  # below this a lane reads as silent (no normalising)
GREYED_COLOR = "#4d525c"  # a muted (or solo-silenced) lane's waveform
LABEL_FILL = (22, 24, 29, 238)  # lane headers: opaque enough to read over a waveform
MUTE_ON, SOLO_ON = "#e05a47", "#f2c94c"  # as the mixer's buttons


class WaveformView(LaneDragging, LoopSnapping, LaneSpectra, pg.GraphicsLayoutWidget):
    """Navigator + mixture + stem lanes with a shared, zoomable time axis."""

    seekRequested = Signal(float)
    loopChanged = Signal(object)  # (start, end) or None
    stemSelected = Signal(str)
    viewRangeChanged = Signal(float, float)
    muteClicked = Signal(str)  # a lane header's M (the window's mixer decides)
    soloClicked = Signal(str)  # a lane header's S
    laneHeightChanged = Signal(int)

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
        self.lane_height = LANE_HEIGHT
        self.normalise = True  # each lane scaled to its own peak
        self.beat_grid: BeatGrid | None = None
        self.snap = True  # loop edges snap to beats (when the grid is known)
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
        self._min_timer = QTimer(self)
        self._min_timer.setSingleShot(True)
        self._min_timer.setInterval(0)
        self._min_timer.timeout.connect(self._apply_minimum_height)

        # navigator: the whole song, with a box for the visible range
        self.nav_vb = TimeViewBox()
        self.navigator = pg.PlotItem(viewBox=self.nav_vb)
        self.navigator.hideButtons()
        self.navigator.hideAxis("bottom")
        blank_axis(self.navigator)
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
        self.nav_bars = grid_curve(BAR_PEN)
        self.nav_vb.addItem(self.nav_bars, ignoreBounds=True)
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
        self.bar_lines = grid_curve(BAR_PEN)  # under the ruler, in the mixture's lane
        self.beat_lines = grid_curve(BEAT_PEN, Qt.PenStyle.DotLine)
        for curve in (self.bar_lines, self.beat_lines):
            self.mix_vb.addItem(curve, ignoreBounds=True)
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
        blank_axis(plot)
        plot.setClipToView(False)
        vb.setBackgroundColor(LANE_BG)
        if key != "mix":
            vb.setXLink(self.mix_vb)
        curve = pg.PlotCurveItem(pen=pg.mkPen(color, width=1), antialias=False,
                                 skipFiniteCheck=True, connect="all")
        plot.addItem(curve)
        zero = pg.InfiniteLine(0, angle=0, pen=pg.mkPen((255, 255, 255, 25)))
        plot.addItem(zero)
        label = pg.TextItem(anchor=(0, 0), fill=pg.mkBrush(*LABEL_FILL))
        label.setParentItem(vb)
        label.setPos(6, 3)
        label.setZValue(30)
        playhead = pg.InfiniteLine(self._playhead, pen=pg.mkPen(PLAYHEAD_COLOR, width=1.5))
        playhead.setZValue(20)
        plot.addItem(playhead)
        lane = Lane(key, plot, curve, playhead, label, None, color=color, title=title)
        lane.zero = zero
        if key in STEM_IDS:  # M/S in the header column, left of the waveform
            name = get_stem(key).name
            lane.mute_button = HeaderButton("M", MUTE_ON, lambda k=key: self.muteClicked.emit(k),
                                            f"Mute {name} (M)")
            lane.solo_button = HeaderButton("S", SOLO_ON, lambda k=key: self.soloClicked.emit(k),
                                            f"Solo {name} (S): only soloed stems play")
            for x, button in ((4, lane.mute_button), (29, lane.solo_button)):
                button.setParentItem(plot)
                button.setPos(x, 4)
        self._set_label(lane)
        vb.sigSeek.connect(self._seek)
        vb.sigLoopDrag.connect(self._loop_drag)
        vb.sigClicked.connect(lambda _vb, k=key: self._lane_clicked(k))
        self.addItem(plot, row=row, col=0)
        self.lanes.append(lane)
        return lane

    def _set_label(self, lane: Lane, note: str = "", dim: bool = False) -> None:
        """The lane's header: title, true level, then a note (pending...) or its info."""
        lane.note, lane.dim = note, dim
        self._refresh_label(lane)

    @staticmethod
    def _refresh_label(lane: Lane) -> None:
        dim = lane.dim or lane.greyed
        color = "#6b7280" if dim else lane.color
        html = f'<span style="color:{color}; font-weight:600">{_escape(lane.title)}</span>'
        if lane.envelope is not None and not lane.dim:
            lane.peak_text = format_peak(lane.envelope.peak)
            html += f'<span style="color:#9aa3b2">&nbsp;&nbsp;{lane.peak_text}</span>'
        if lane.muted or lane.greyed:
            html += ('<span style="color:#e05a47">&nbsp;&nbsp;muted</span>' if lane.muted
                     else '<span style="color:#7d8594">&nbsp;&nbsp;silenced by solo</span>')
        if lane.note:
            html += f'<span style="color:#c3cad6">&nbsp;&nbsp;{_escape(lane.note)}</span>'
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
        self._apply_scale(lane)
        lane.curve.setVisible(available)
        lane.zero.setVisible(available)
        lane.playhead.setVisible(available)
        for button in (lane.mute_button, lane.solo_button):
            if button is not None:
                button.setVisible(available)
        if available:
            plot.setMinimumHeight(self.lane_height)
            plot.setMaximumHeight(16777215)
            vb.setBackgroundColor(self._lane_bg(lane))
            self._paint_state(lane)
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
        self.set_beat_grid(None)
        self.mix.envelope = envelope
        self.samplerate = envelope.samplerate
        self.duration = max(envelope.duration, 1.0 / envelope.samplerate)
        self.mix.title = title
        self._set_label(self.mix)
        # every lane uses the mixture's scale: loud songs fill the lanes, quiet ones are
        # not lost in the middle, and stems keep their level relative to the song
        self._y_peak = max(envelope.peak, 0.02) * 1.08
        for lane in self.lanes:
            self._apply_scale(lane)
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
        self.set_beat_grid(None)
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
        """Never let the lanes be squeezed below their minimum (they would clip): the
        window's lane area scrolls instead. Coalesced into one update per event-loop turn
        (growing the view relays out every lane at once)."""
        self.ci.layout.invalidate()
        self._min_timer.start()

    def settle(self) -> None:
        """Apply a pending minimum height and lay the lanes out now (to measure them)."""
        if self._min_timer.isActive():
            self._min_timer.stop()
            self._apply_minimum_height()
        self.ci.layout.activate()

    def _apply_minimum_height(self) -> None:
        if getattr(self, "closed", False):
            return
        self.lanes_drawn()  # lanes shown or hidden since: spectrograms follow
        hint = self.ci.effectiveSizeHint(Qt.SizeHint.MinimumSize)
        height = int(hint.height()) + 10
        if height != self.minimumHeight():
            self.setMinimumHeight(height)

    # -- lane height, normalisation and the mixer's state ----------------------------------
    def set_lane_height(self, pixels: int) -> int:
        """Make stem lanes at least `pixels` tall (extra lanes about half); returns the
        height used. Taller than the room: the window's lane area scrolls."""
        pixels = int(min(max(pixels, LANE_HEIGHT_MIN), LANE_HEIGHT_MAX))
        if pixels == self.lane_height:
            return pixels
        self.lane_height = pixels
        for lane in self._stem_lanes.values():
            if lane.available:
                lane.plot.setMinimumHeight(pixels)
        for lane in self._extra.values():
            lane.plot.setFixedHeight(self._extra_height(lane))
        self._update_minimum_height()
        self.laneHeightChanged.emit(pixels)
        return pixels

    def _extra_height(self, lane: Lane) -> int:
        return max(lane.base_height, int(self.lane_height * 0.55))

    def set_normalise(self, on: bool) -> None:
        """Scale each lane to its own peak (on) or every lane to the mixture's (off)."""
        self.normalise = bool(on)
        for lane in self.lanes:
            self._apply_scale(lane)

    def lane_scale(self, lane: Lane) -> float:
        """The y half-range a lane is drawn with: its own peak when normalising (a quiet
        stem fills its lane), else the mixture's; a silent lane keeps the mixture's."""
        if self.normalise and lane.envelope is not None:
            peak = lane.envelope.peak
            if peak > SILENT_PEAK:
                return peak * 1.08
        return self._y_peak

    def _apply_scale(self, lane: Lane) -> None:
        scale = self.lane_scale(lane)
        if scale != lane.scale:
            lane.scale = scale
            lane.plot.getViewBox().setYRange(-scale, scale, padding=0)
        if lane.envelope is not None and not lane.dim and \
                format_peak(lane.envelope.peak) != lane.peak_text:
            self._refresh_label(lane)

    def set_lane_mix_state(self, stem_id: str, mute: bool, solo: bool, greyed: bool) -> None:
        """Show the mixer's state on a stem lane: M/S lit, greyed when it is not heard
        (muted, or another stem is soloed)."""
        lane = self._stem_lanes.get(stem_id)
        if lane is None:
            return
        if (lane.muted, lane.soloed, lane.greyed) == (mute, solo, greyed):
            return
        lane.muted, lane.soloed, lane.greyed = bool(mute), bool(solo), bool(greyed)
        self._paint_state(lane)
        if lane.available:
            lane.plot.getViewBox().setBackgroundColor(QColor(self._lane_bg(lane)))
            self._refresh_label(lane)

    def _paint_state(self, lane: Lane) -> None:
        if lane.mute_button is not None:
            lane.mute_button.set_checked(lane.muted)
            lane.solo_button.set_checked(lane.soloed)
        color = GREYED_COLOR if lane.greyed else lane.color
        lane.curve.setPen(pg.mkPen(color, width=1))

    def _lane_bg(self, lane: Lane) -> str:
        if not lane.available:
            return UNAVAILABLE_BG
        if lane.key == self._selected:
            return LANE_BG_SELECTED
        return UNAVAILABLE_BG if lane.greyed else LANE_BG

    def lane_rect(self, key: str):
        """A lane's rectangle in this widget's coordinates (to scroll it into view), or
        None when it is not shown."""
        lane = self._stem_lanes.get(key) or self._extra.get(key)
        if lane is None or not lane.plot.isVisible():
            return None
        scene = lane.plot.mapRectToScene(lane.plot.boundingRect())
        return self.mapFromScene(scene).boundingRect()

    def wheelEvent(self, ev) -> None:  # noqa: N802
        """Ctrl+wheel: taller or shorter lanes (as in a DAW); the rest as before."""
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            delta = ev.angleDelta().y()
            if delta:
                step = LANE_HEIGHT_STEP if delta > 0 else -LANE_HEIGHT_STEP
                self.set_lane_height(self.lane_height + step)
            ev.accept()
            return
        super().wheelEvent(ev)

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
        lane.base_height = int(height)
        self._apply_scale(lane)
        lane.plot.setFixedHeight(self._extra_height(lane))
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
            self._apply_scale(lane)  # stems being separated grow as chunks arrive
        self._show_beats(x0, x1, width)
        self.lanes_drawn()  # lanes showing spectrograms (lane_spectrogram.py)

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
        if self.snapping() and not held_modifiers() & Qt.KeyboardModifier.ShiftModifier:
            snapped = self._snapped_region(values)
            if snapped != values:
                values = snapped
                region.setRegion(values)
        for lane in self.lanes:
            if lane.region is not None and lane.region is not region:
                lane.region.setRegion(values)
        self.nav_loop.setRegion(values)
        self._syncing = False

    def _region_finished(self, region: pg.LinearRegionItem) -> None:
        if self._syncing:
            return
        start, end = region.getRegion()
        if self.snapping() and not held_modifiers() & Qt.KeyboardModifier.ShiftModifier:
            # a region dragged whole ends without a last "moved" signal: snap it here
            start, end = self._snapped_region((start, end))
        self.set_loop(start, end, emit=True)

    def _loop_drag(self, start: float, end: float, finished: bool) -> None:
        if self.duration <= 0:
            return
        start, end = self._clamp(start), self._clamp(end)
        if self.snapping() and not held_modifiers() & Qt.KeyboardModifier.ControlModifier:
            snapped = self.snap_time(start), self.snap_time(end)
            if snapped[1] - snapped[0] >= 1e-3:
                start, end = snapped
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
            lane.plot.getViewBox().setBackgroundColor(QColor(self._lane_bg(lane)))

    def selected_stem(self) -> str:
        return self._selected


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
