"""Issue 19: the lanes can show spectrograms (View > Lanes show spectrograms), so a stem's
lane and its reference lane below it can be compared by eye; computed on a worker, the
same log-frequency colour map as the spectrogram view, remembered in the settings."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from stemwright.desktop.engine.workers import SeparatedSong, SeparationOptions  # noqa: E402
from stemwright.desktop.main_window import MainWindow, _NoPlayer  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402
from stemwright.desktop.views.spectrogram_data import (  # noqa: E402
    DB_RANGE,
    F_MIN,
    LOG_BINS,
    to_rgba,
)
from stemwright.desktop.views.waveform import Envelope  # noqa: E402

pytestmark = pytest.mark.usefixtures("desktop_isolation")

SR = 8000
LOW, HIGH = 150.0, 2500.0  # Hz: the bass's sine and the vocals' sine


def _sine(freq: float, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x, x])


def _row(freq: float) -> int:
    """The image row of `freq` on the log axis (as `Spectrogram.log_image` places it)."""
    nyquist = SR / 2
    f_min = min(F_MIN, nyquist / 4)
    return int(round(np.log(freq / f_min) / np.log(nyquist / f_min) * (LOG_BINS - 1)))


def _open(qtbot, tmp_path, settings_path):
    stems = {"bass": _sine(LOW), "vocals": _sine(HIGH)}
    path = tmp_path / "song.wav"
    sf.write(path, (stems["bass"] + stems["vocals"]).T, SR)
    window = MainWindow(Settings(settings_path), player=_NoPlayer())
    window.confirm = lambda *_args: True
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.songLoaded, timeout=60_000):
        window.open_file(path)
    result = SimpleNamespace(model="stemwright6", stems=stems, unavailable=(), samplerate=SR,
                             residual_db=None, residual_in_other=False, notes=[])
    out = SeparatedSong(result, {s: Envelope.compute(x, SR) for s, x in stems.items()},
                        SeparationOptions("stemwright6"))
    window.separation.apply(out, "", on_disk=True, announce=False)
    qtbot.waitUntil(lambda: {"bass", "vocals"} <= set(window.waveform.stem_lanes()),
                    timeout=10_000)
    window.waveform.set_extra_lane("ref:vocals", "vocals", 1, "Vocals reference", "#888888",
                                   Envelope.compute(_sine(HIGH), SR), 28)
    QApplication.instance().processEvents()
    return window


def _energy(image, freq: float) -> float:
    """Brightness (RGB mean) of the brightest row near `freq`, averaged over time."""
    data = image.image.astype(np.float32)
    row = _row(freq)
    return float(data[:, max(row - 2, 0):row + 3, :3].mean(axis=2).max(axis=1).mean())


def test_lanes_show_spectrograms_and_back(qtbot, tmp_path):
    settings_path = tmp_path / "settings.ini"
    window = _open(qtbot, tmp_path, settings_path)
    view = window.waveform
    assert not window.act_lane_spectra.isChecked()
    assert view.lane_spectrogram("bass") is None  # waveforms by default
    view_menu = next(a.menu() for a in window.menuBar().actions() if "View" in a.text())
    assert "Lanes show spectrograms" in [a.text().replace("&", "")
                                         for a in view_menu.actions()]

    window.act_lane_spectra.trigger()  # as the View menu does
    keys = ("mix", "bass", "vocals", "ref:vocals")
    qtbot.waitUntil(lambda: all(view.lane_spectrogram(k) is not None for k in keys),
                    timeout=20_000)
    lanes = {lane.key: lane for lane in view.lanes}
    for key in keys:
        assert not lanes[key].curve.isVisible()  # the spectrogram instead of the envelope
    bass, vocals = view.lane_spectrogram("bass"), view.lane_spectrogram("vocals")
    assert bass.image.shape[1] == LOG_BINS  # log frequency, as the spectrogram view
    assert not np.array_equal(bass.image, vocals.image)
    # energy where each sine is: the bass low, the vocals high
    assert _energy(bass, LOW) > _energy(bass, HIGH) + 60
    assert _energy(vocals, HIGH) > _energy(vocals, LOW) + 60
    # the same colour map and dB range as the spectrogram view: every pixel is one of its
    steps = (np.arange(256, dtype=np.float32) + 0.5) * (DB_RANGE / 255.0) - DB_RANGE
    lut = to_rgba(steps[None, :])[0]
    colours = {tuple(c) for c in lut.tolist()}
    assert {tuple(c) for c in np.unique(bass.image.reshape(-1, 4), axis=0).tolist()} <= colours
    # the reference lane under the vocals shows the same picture as the vocals
    assert np.array_equal(view.lane_spectrogram("ref:vocals").image, vocals.image)
    # the image covers the lane's height and the song's time
    rect = bass.mapRectToParent(bass.boundingRect())
    (_x0, _x1), (y0, y1) = lanes["bass"].plot.getViewBox().viewRange()
    assert rect.top() == pytest.approx(y0) and rect.bottom() == pytest.approx(y1)
    assert rect.right() == pytest.approx(1.5, abs=0.2)
    assert Settings(settings_path).lane_spectrograms()
    # a lane taken away and made again (another song's references) shows its own
    view.remove_extra_lane("ref:vocals")
    view.set_extra_lane("ref:vocals", "vocals", 1, "Vocals reference", "#888888",
                        Envelope.compute(_sine(LOW), SR), 28)
    lanes = {lane.key: lane for lane in view.lanes}
    qtbot.waitUntil(lambda: view.lane_spectrogram("ref:vocals") is not None, timeout=20_000)
    ref = view.lane_spectrogram("ref:vocals")
    assert ref.getViewBox() is lanes["ref:vocals"].plot.getViewBox()
    assert _energy(ref, LOW) > _energy(ref, HIGH) + 60

    window.act_lane_spectra.trigger()  # off: waveforms again
    for key in keys:
        assert view.lane_spectrogram(key) is None
        assert lanes[key].curve.isVisible()
    assert not Settings(settings_path).lane_spectrograms()


def test_the_setting_is_remembered(qtbot, tmp_path):
    settings_path = tmp_path / "settings.ini"
    settings = Settings(settings_path)
    settings.set_lane_spectrograms(True)
    settings.sync()
    window = _open(qtbot, tmp_path, settings_path)
    assert window.act_lane_spectra.isChecked()
    view = window.waveform
    qtbot.waitUntil(lambda: view.lane_spectrogram("vocals") is not None, timeout=20_000)
    vocals = view.lane_spectrogram("vocals")
    assert _energy(vocals, HIGH) > _energy(vocals, LOW) + 60


def test_a_silent_signal_draws_dark_not_bright():
    """Silence is the bottom of the colour scale (it used to be 0 dB relative to itself)."""
    from stemwright.desktop.views.spectrogram_data import DB_RANGE, compute_spectrogram

    spec = compute_spectrogram(np.zeros((2, 44100), np.float32), 44100)
    assert float(np.max(spec.db)) <= -DB_RANGE
