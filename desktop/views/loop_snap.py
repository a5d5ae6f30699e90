"""The loop's beat grid in the waveform view (`WaveformView` inherits `LoopSnapping`):
bar lines drawn faintly on the navigator, the mixture's lane and its ruler (beats too when
zoomed in), and loop edges snapped to the nearest beat while snapping is on and the song's
beats are known (`beat_grid.BeatGrid`, from the tempo analysis)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from .beat_grid import BeatGrid

BAR_PEN = (255, 255, 255, 56)  # bar lines on the navigator and the mixture: faint
BEAT_PEN = (255, 255, 255, 18)
BEAT_MIN_PX = 10  # beat lines show only when beats are at least this far apart


def held_modifiers() -> Qt.KeyboardModifier:
    """The keyboard modifiers held now (Shift while dragging a loop edge: no snapping)."""
    return QGuiApplication.keyboardModifiers()


class LoopSnapping:
    """The beat grid and snapping part of `WaveformView` (it provides `nav_bars`,
    `bar_lines`, `beat_lines`, `time_axis`, `mix_vb`, `_loop`, `duration`, `_clamp` and
    `view_range`)."""

    beat_grid: BeatGrid | None = None
    snap = True  # loop edges snap to beats (when the grid is known)

    def set_beat_grid(self, grid: BeatGrid | None) -> None:
        """The song's beats (None: unknown): bar lines on the navigator and the ruler, and
        what loop edges snap to."""
        self.beat_grid = grid
        self.time_axis.set_bars(None if grid is None else grid.bars())
        if grid is None:
            for curve in (self.nav_bars, self.bar_lines, self.beat_lines):
                curve.setData([], [])
            return
        set_lines(self.nav_bars, grid.bars())
        set_lines(self.bar_lines, grid.bars())
        set_lines(self.beat_lines, grid.beats)
        self._show_beats(*self.view_range(), max(int(self.mix_vb.width()), 100))

    def _show_beats(self, x0: float, x1: float, width: int) -> None:
        grid = self.beat_grid
        period_px = grid.period * width / max(x1 - x0, 1e-9) if grid is not None else 0.0
        self.beat_lines.setVisible(period_px >= BEAT_MIN_PX)

    def set_snap(self, on: bool) -> None:
        """Loop edges snap to the nearest beat (on) or go where they are dragged."""
        self.snap = bool(on)

    def snapping(self) -> bool:
        """True when loop edges snap now: snap on and the song's beats known."""
        return self.snap and self.beat_grid is not None

    def snap_time(self, seconds: float) -> float:
        """`seconds` moved to the nearest beat while snapping, else unchanged."""
        if not self.snapping():
            return seconds
        return self._clamp(self.beat_grid.snap(seconds))

    def _snapped_region(self, values: tuple[float, float]) -> tuple[float, float]:
        """Snap a loop region being dragged: the edge that moved goes to its nearest
        beat; a region moved whole keeps its length with its start on a beat."""
        start, end = values
        old = self._loop
        if old is None:
            return self.snap_time(start), self.snap_time(end)
        moved_start, moved_end = abs(start - old[0]) > 1e-9, abs(end - old[1]) > 1e-9
        if moved_start and moved_end and abs((end - start) - (old[1] - old[0])) < 1e-6:
            new_start = self.snap_time(start)
            length = old[1] - old[0]
            if new_start + length > self.duration:
                new_start = self.duration - length
            return new_start, new_start + length
        if moved_start:
            start = self.snap_time(start)
        if moved_end:
            end = self.snap_time(end)
        if end - start < 1e-3:  # both edges on one beat: keep the dragged edge free
            return values
        return start, end


def grid_curve(color: tuple[int, int, int, int],
                style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> pg.PlotCurveItem:
    """A set of vertical lines (bar or beat lines), drawn as one curve of pairs."""
    curve = pg.PlotCurveItem(pen=pg.mkPen(color, width=1, style=style), antialias=False,
                             skipFiniteCheck=True, connect="pairs")
    curve.setZValue(2)
    curve.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
    return curve


def set_lines(curve: pg.PlotCurveItem, times: np.ndarray) -> None:
    """Vertical lines at `times` through the whole height of any lane (|y| <= 1e3)."""
    x = np.repeat(np.asarray(times, dtype=np.float64), 2)
    y = np.tile(np.array([-1e3, 1e3]), len(times))
    curve.setData(x, y)




__all__ = ["BAR_PEN", "BEAT_MIN_PX", "BEAT_PEN", "LoopSnapping", "grid_curve",
           "held_modifiers"]
