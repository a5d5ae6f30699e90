"""Spectrogram of the mixture or of one stem: dB colour scale, linear or log frequency.

`compute_spectrogram` is plain numpy in `spectrogram_data` (run it in a worker); the
widget only shows the result, time-aligned with the waveform lanes through a linked x
axis.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from .lane_items import AXIS_WIDTH, TimeAxis, TimeViewBox
from .spectrogram_data import COLORMAP, DB_RANGE, F_MIN, Spectrogram
from .waveform import BACKGROUND, LOOP_BRUSH


def format_hz(freq: float) -> str:
    """200, 1k, 2.5k, 20k."""
    if freq >= 1000:
        k = freq / 1000
        return f"{k:.0f}k" if abs(k - round(k)) < 1e-6 else f"{k:.1f}k"
    return f"{freq:.0f}"


class FrequencyAxis(pg.AxisItem):
    """Frequency axis in Hz/kHz; in log mode the view's y value is log10(Hz)."""

    LOG_MAJOR = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
    LOG_MINOR = (30, 40, 60, 70, 80, 90, 300, 400, 600, 700, 800, 900, 3000, 4000, 6000,
                 7000, 8000, 9000)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log = True

    def tickValues(self, minVal, maxVal, size):  # noqa: N802
        if not self.log:
            return super().tickValues(minVal, maxVal, size)
        major = [math.log10(f) for f in self.LOG_MAJOR if minVal <= math.log10(f) <= maxVal]
        if size < 120:
            major = [v for v in major if round(10 ** v) in (100, 1000, 10000)]
        minor = [math.log10(f) for f in self.LOG_MINOR if minVal <= math.log10(f) <= maxVal]
        return [(1.0, major), (0.1, minor)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        if self.log:
            return [format_hz(10 ** v) for v in values]
        return [format_hz(v) for v in values]


def colormap_pixmap(width: int = 120, height: int = 10) -> QPixmap:
    """A horizontal strip of the spectrogram colour map (for the dB legend)."""
    lut = pg.colormap.get(COLORMAP).getLookupTable(nPts=width, alpha=False)
    rgb = np.ascontiguousarray(np.repeat(lut[None, :, :3], height, axis=0), dtype=np.uint8)
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


EMPTY_TEXT = "The spectrogram of the song (or of a stem) shows here once a song is open"


class SpectrogramView(QWidget):
    """Header (source, frequency scale, dB legend) over a time-linked image plot."""

    seekRequested = Signal(float)
    sourceChanged = Signal(str)
    logFrequencyChanged = Signal(bool)
    loopDragged = Signal(float, float, bool)

    def __init__(self, parent: QWidget | None = None, log_frequency: bool = True) -> None:
        super().__init__(parent)
        self.spec: Spectrogram | None = None
        self._log = bool(log_frequency)

        header = QHBoxLayout()
        header.setContentsMargins(8, 2, 8, 0)
        header.setSpacing(6)
        title = QLabel("Spectrogram of")
        self.source = QComboBox()
        self.source.setToolTip("Which signal to analyse")
        self.source.addItem("Mixture", "mix")
        self.source.currentIndexChanged.connect(
            lambda _i: self.sourceChanged.emit(self.current_source()))
        self.scale = QComboBox()
        self.scale.addItem("Log frequency", True)
        self.scale.addItem("Linear frequency", False)
        self.scale.setCurrentIndex(0 if self._log else 1)
        self.scale.currentIndexChanged.connect(
            lambda _i: self.set_log_frequency(bool(self.scale.currentData())))
        self.status = QLabel("")
        self.status.setStyleSheet("color: #9aa3b2")
        legend = QLabel()
        legend.setPixmap(colormap_pixmap())
        legend.setToolTip(f"Colour scale: level in dB relative to the loudest bin "
                          f"(-{DB_RANGE:.0f} dB to 0 dB)")
        header.addWidget(title)
        header.addWidget(self.source)
        header.addWidget(self.scale)
        header.addWidget(self.status, 1)
        header.addWidget(QLabel(f"-{DB_RANGE:.0f} dB"))
        header.addWidget(legend)
        header.addWidget(QLabel("0 dB"))

        self.vb = TimeViewBox(y_range=(0, 1))
        self.freq_axis = FrequencyAxis("left")
        self.freq_axis.setWidth(AXIS_WIDTH)
        self.time_axis = TimeAxis("bottom")
        self.plot_widget = pg.PlotWidget(viewBox=self.vb, background=BACKGROUND,
                                         axisItems={"left": self.freq_axis,
                                                    "bottom": self.time_axis})
        self.plot = self.plot_widget.getPlotItem()
        self.plot.hideButtons()
        self.plot.layout.setContentsMargins(4, 7, 8, 2)  # room for the top label (20k)
        self.freq_axis.setTextPen("#aab2bf")
        self.time_axis.setTextPen("#aab2bf")
        for axis in (self.freq_axis, self.time_axis):
            axis.setStyle(showValues=False)  # until there is something to measure
        self.image = pg.ImageItem(axisOrder="col-major")
        self.plot.addItem(self.image)
        self.playhead = pg.InfiniteLine(0, pen=pg.mkPen("#ffffff", width=1.5))
        self.playhead.setZValue(20)
        self.plot.addItem(self.playhead)
        self.loop_region = pg.LinearRegionItem((0, 0), movable=False, brush=LOOP_BRUSH,
                                               pen=pg.mkPen(None))
        self.loop_region.setVisible(False)
        self.plot.addItem(self.loop_region)
        self.vb.sigSeek.connect(self.seekRequested)
        self.vb.sigLoopDrag.connect(self.loopDragged)
        # what an empty view is for, in its middle (hidden while a spectrogram shows)
        self.placeholder = QLabel(EMPTY_TEXT, self.plot_widget)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #8a93a3; background: transparent;")
        self.placeholder.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.plot_widget, 1)
        self.setStyleSheet(f"SpectrogramView {{ background: {BACKGROUND}; }}")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._apply_axis()

    # -- sources ----------------------------------------------------------------------
    def current_source(self) -> str:
        return str(self.source.currentData() or "mix")

    def set_sources(self, items: list[tuple[str, str]]) -> None:
        """Offer the mixture plus (key, label) stems; keeps the current one if still there."""
        current = self.current_source()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem("Mixture", "mix")
        for key, label in items:
            self.source.addItem(label, key)
        index = max(0, self.source.findData(current))
        self.source.setCurrentIndex(index)
        self.source.blockSignals(False)
        if self.current_source() != current:
            self.sourceChanged.emit(self.current_source())

    # -- data -------------------------------------------------------------------------
    def set_busy(self, text: str) -> None:
        self.status.setText(text)

    def set_spectrogram(self, spec: Spectrogram | None) -> None:
        """Show `spec` (or nothing, with the placeholder)."""
        self.spec = spec
        self.status.setText("")
        self.placeholder.setVisible(spec is None)
        for axis in (self.freq_axis, self.time_axis):
            axis.setStyle(showValues=spec is not None)
        self._apply_image()

    def clear(self) -> None:
        self.set_spectrogram(None)

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        self.placeholder.setGeometry(self.plot_widget.rect())

    def log_frequency(self) -> bool:
        return self._log

    def set_log_frequency(self, on: bool) -> None:
        """Switch the frequency axis between log and linear (redraws from the cache)."""
        on = bool(on)
        if self.scale.currentIndex() != (0 if on else 1):
            self.scale.blockSignals(True)
            self.scale.setCurrentIndex(0 if on else 1)
            self.scale.blockSignals(False)
        if on == self._log:
            return
        self._log = on
        self._apply_axis()
        self._apply_image()
        self.logFrequencyChanged.emit(on)

    def _y_span(self) -> tuple[float, float]:
        nyquist = (self.spec.samplerate if self.spec is not None else 44100) / 2
        if self._log:
            return math.log10(min(F_MIN, nyquist / 4)), math.log10(nyquist)
        return 0.0, nyquist

    def _apply_axis(self) -> None:
        self.freq_axis.log = self._log
        self.freq_axis.picture = None
        self.freq_axis.update()
        y0, y1 = self._y_span()
        self.vb.setYRange(y0, y1, padding=0)

    def _apply_image(self) -> None:
        spec = self.spec
        if spec is None:
            self.image.clear()
            return
        data = spec.image(self._log)
        self.image.setImage(data, autoLevels=False)
        hop_s = spec.hop / spec.samplerate
        y0, y1 = self._y_span()
        self.image.setRect(QRectF(-hop_s / 2, y0, data.shape[0] * hop_s, y1 - y0))
        self.vb.setLimits(yMin=y0, yMax=y1)
        self.vb.setYRange(y0, y1, padding=0)

    # -- time -------------------------------------------------------------------------
    def link_x(self, view: pg.ViewBox) -> None:
        """Share the x axis (time) with `view`."""
        self.vb.setXLink(view)

    def set_duration(self, seconds: float) -> None:
        self.vb.setLimits(xMin=0, xMax=max(seconds, 1e-3))

    def set_playhead(self, seconds: float) -> None:
        self.playhead.setValue(seconds)

    def set_loop(self, loop: tuple[float, float] | None) -> None:
        if loop is None:
            self.loop_region.setVisible(False)
        else:
            self.loop_region.setRegion(loop)
            self.loop_region.setVisible(True)
