"""Spectrograms drawn in the waveform lanes (View > Lanes show spectrograms), so a stem's
lane and its reference lane below it can be compared by eye.

`LaneSpectra` is a mixin of `WaveformView` (waveform.py): while it is on, every lane that
draws a signal shows that signal's log-frequency spectrogram (the colour map and dB range
of the spectrogram view) instead of its waveform. The view never computes: it asks
`request(key, envelope)` (given by the spectrogram controller, which runs a worker task)
and is handed the result through `set_lane_spectrogram`; until then the waveform shows.
"""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QRectF

from .lane_items import Lane
from .spectrogram_data import Spectrogram
from .waveform_data import Envelope

LaneRequest = Callable[[str, Envelope], None]  # (lane key, envelope): compute, off the GUI


class LaneSpectra:
    """The per-lane spectrogram part of `WaveformView` (it provides `lanes`)."""

    lanes: list[Lane]
    lane_spectra_on = False
    _lane_request: LaneRequest | None = None
    _lane_specs: dict | None = None  # id(envelope) -> (envelope, Spectrogram or None)
    _lane_pending: dict | None = None  # lane key -> the envelope being computed
    _lane_images: dict | None = None  # lane key -> pg.ImageItem

    def set_lane_spectrograms(self, on: bool, request: LaneRequest | None = None) -> None:
        """Draw every lane as a spectrogram (on) or as a waveform (off); `request` computes
        a lane's spectrogram in the background and hands it to `set_lane_spectrogram`."""
        self.lane_spectra_on = bool(on)
        if request is not None:
            self._lane_request = request
        if self._lane_specs is None:
            self._lane_specs, self._lane_pending, self._lane_images = {}, {}, {}
        if not self.lane_spectra_on:
            self._lane_specs.clear()  # the memory is the user's again
            self._lane_pending.clear()
        self.lanes_drawn()

    def set_lane_spectrogram(self, envelope: Envelope, spec: Spectrogram | None) -> None:
        """A lane's spectrogram is ready (None: none to show, e.g. a silent signal or a
        failed task; that lane keeps its waveform and is not asked for again)."""
        if self._lane_pending is None:
            return
        for key, pending in list(self._lane_pending.items()):
            if pending is envelope:
                del self._lane_pending[key]
        shown = any(lane.envelope is envelope for lane in self.lanes)
        if self.lane_spectra_on and shown:
            self._lane_specs[id(envelope)] = (envelope, spec)
        self.lanes_drawn()

    def lane_spectrogram(self, key: str) -> pg.ImageItem | None:
        """The image lane `key` shows now (None: it draws its waveform)."""
        image = (self._lane_images or {}).get(key)
        if image is None or not image.isVisible():
            return None
        plot = getattr(image, "lane_plot", None)
        return image if any(ln.key == key and ln.plot is plot for ln in self.lanes) else None

    def lanes_drawn(self) -> None:
        """Bring each lane in line with the mode (called after the lanes are drawn)."""
        if self._lane_images is None:
            return
        on = self.lane_spectra_on
        live = {id(lane.envelope) for lane in self.lanes if lane.envelope is not None}
        for ident in [i for i in self._lane_specs if i not in live]:
            del self._lane_specs[ident]  # a lane that shows another signal now
        keys = set()
        for lane in self.lanes:
            keys.add(lane.key)
            env = lane.envelope
            entry = self._lane_specs.get(id(env)) if on and env is not None else None
            if entry is None and on and env is not None and lane.plot.isVisible():
                self._ask(lane.key, env)
                entry = self._lane_specs.get(id(env))  # a cached or silent one: at once
            self._show(lane, entry[1] if entry is not None else None)
        for key in [k for k in self._lane_images if k not in keys]:
            del self._lane_images[key]  # its lane was removed (and its items with it)

    def _ask(self, key: str, envelope: Envelope) -> None:
        if self._lane_request is None or self._lane_pending.get(key) is not None:
            return  # one task per lane at a time; the newest signal is asked for next
        self._lane_pending[key] = envelope
        self._lane_request(key, envelope)

    def _show(self, lane: Lane, spec: Spectrogram | None) -> None:
        image = self._lane_images.get(lane.key)
        if image is not None and getattr(image, "lane_plot", None) is not lane.plot:
            image = None  # a lane removed and made again under the same key
        if spec is None:
            if image is not None:
                image.setVisible(False)
                image.clear()
            if lane.curve is not None and lane.envelope is not None:
                lane.curve.setVisible(True)
                if lane.zero is not None:
                    lane.zero.setVisible(True)
            return
        if image is None:
            image = pg.ImageItem(axisOrder="col-major")
            image.setZValue(-5)  # under the playhead, the loop and the header
            lane.plot.addItem(image)
            image.lane_plot = lane.plot
            self._lane_images[lane.key] = image
            lane.plot.getViewBox().sigYRangeChanged.connect(
                lambda _vb, _r, im=image, ln=lane: self._fit(im, ln))  # a new lane scale
        data = spec.image(True)  # log frequency, as the spectrogram view shows it
        if image.image is not data:
            image.setImage(data, autoLevels=False)
        image.hop_s = spec.hop / spec.samplerate
        self._fit(image, lane)
        image.setVisible(True)
        if lane.curve is not None:
            lane.curve.setVisible(False)
        if lane.zero is not None:
            lane.zero.setVisible(False)

    @staticmethod
    def _fit(image: pg.ImageItem, lane: Lane) -> None:
        """Stretch the image over the lane's height, whatever y range it draws now."""
        data = image.image
        if data is None:
            return
        (_x0, _x1), (y0, y1) = lane.plot.getViewBox().viewRange()
        hop_s = getattr(image, "hop_s", 0.0)
        image.setRect(QRectF(-hop_s / 2, y0, data.shape[0] * hop_s, y1 - y0))
