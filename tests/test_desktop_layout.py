"""The window on a laptop screen (issue 19, Layout and Mixer state on the lanes): the lanes
scroll in their own area and never push the mixer or grow the window, which fits 1366x768
with six stem lanes, six reference lanes and error lanes; the mixer keeps full faders with
dB readouts; lane M/S and the mixer are one state; lanes are normalised with their true
level in the header; lane height and the spectrogram's height are the user's."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, QRect, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from stemwright.desktop.engine.workers import SeparatedSong, SeparationOptions  # noqa: E402
from stemwright.desktop.main_window import MainWindow, _NoPlayer  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402
from stemwright.desktop.views.waveform import (  # noqa: E402
    GREYED_COLOR,
    LANE_HEIGHT,
    Envelope,
    WaveformView,
)
from stemwright.models.stems import STEM_IDS  # noqa: E402

pytestmark = pytest.mark.usefixtures("desktop_isolation")  # never the real user's settings

SR = 8000
LAPTOP = (1366, 768)
DECORATIONS = 40  # a window manager's title bar and frame on a 1366x768 screen
LEVELS = {"vocals": 0.5, "drums": 0.8, "bass": 0.3, "electric_guitar": 0.2, "wind": 0.01,
          "other": 0.0}  # wind is quiet, other silent


def pump(ms: int = 50) -> None:
    """Let queued layout work and the window's one-step-per-turn updates run."""
    app = QApplication.instance()
    for _ in range(max(ms // 10, 1)):
        app.processEvents()


def _stems(seconds: float = 2.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = int(seconds * SR)
    out = {}
    for stem_id, level in LEVELS.items():
        x = rng.standard_normal((2, n)).astype(np.float32)
        out[stem_id] = (level * x / np.abs(x).max()).astype(np.float32)
    return out


@pytest.fixture
def separated(qtbot, tmp_path):
    """A window at 1366x768 showing a song separated into six stems, with a reference lane
    under every stem and error lanes under two: the fullest the lanes get."""
    stems = _stems()
    mix = sum(stems.values())
    path = tmp_path / "song.wav"
    sf.write(path, mix.T, SR)
    window = MainWindow(Settings(tmp_path / "settings.ini"), player=_NoPlayer())
    window.confirm = lambda *_args: True
    qtbot.addWidget(window)
    window.resize(LAPTOP[0], LAPTOP[1] - DECORATIONS)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.songLoaded, timeout=60_000):
        window.open_file(path)
    result = SimpleNamespace(model="stemwright6", stems=stems, unavailable=(), samplerate=SR,
                             residual_db=None, residual_in_other=False, notes=[])
    out = SeparatedSong(result, {s: Envelope.compute(x, SR) for s, x in stems.items()},
                        SeparationOptions("stemwright6"))
    window.separation.apply(out, "", on_disk=True, announce=False)
    qtbot.waitUntil(lambda: set(window.mixer_panel.strips) == set(STEM_IDS), timeout=10_000)
    view = window.waveform
    for stem_id in STEM_IDS:
        view.set_extra_lane(f"ref:{stem_id}", stem_id, 1, f"{stem_id} reference", "#888888",
                            out.envelopes[stem_id], 28)
    for stem_id in ("vocals", "drums"):
        for slot, kind in ((2, "interf"), (3, "artif")):
            view.set_extra_lane(f"{kind}:{stem_id}", stem_id, slot, f"{stem_id} {kind}",
                                "#e8795a", out.envelopes[stem_id], 34)
    pump(200)
    return window


def test_window_fits_a_laptop_screen_with_every_lane(qtbot, separated):
    """Old code: the window's minimum height became 837+ px with these lanes (taller than
    the screen) and the window grew by itself when error lanes appeared."""
    window = separated
    assert len(window.waveform.stem_lanes()) == 6
    assert len(window.waveform.extra_lanes()) == 6 + 4
    for hint in (window.minimumSizeHint(), window.minimumSize()):
        assert hint.width() <= LAPTOP[0] and hint.height() <= LAPTOP[1] - DECORATIONS, hint
    assert window.height() <= LAPTOP[1] - DECORATIONS  # it did not grow by itself
    # the lanes scroll in their own area instead
    scroll = window.lane_scroll
    assert window.waveform.height() > scroll.viewport().height()
    assert scroll.verticalScrollBar().isVisible()
    # the smallest window still fits every part
    window.resize(window.minimumSizeHint())
    pump(100)
    assert window.height() <= LAPTOP[1] - DECORATIONS
    fader = window.mixer_panel.fader_widget("vocals")  # compact here: a horizontal fader
    assert fader.isVisible() and max(fader.width(), fader.height()) >= 40


def test_mixer_faders_and_readouts_stay_visible(qtbot, separated):
    """The full mixer, when chosen on a laptop screen, still fits with its faders (the
    default there is the compact one: tests/test_gui_snap_cache.py)."""
    window = separated
    window.set_mixer_size("full")
    pump(100)
    panel = window.mixer_panel
    assert not panel.compact and not panel.slim
    win_rect = QRect(QPoint(0, 0), window.size())
    for stem_id, strip in [*panel.strips.items(), ("master", None)]:
        fader = panel.master_fader if strip is None else strip.fader
        label = panel.master_label if strip is None else strip.gain_label
        assert fader.isVisible() and fader.height() >= 60, stem_id
        assert label.isVisible() and label.text().endswith("dB"), stem_id
        top_left = fader.mapTo(window, QPoint(0, 0))
        assert win_rect.contains(QRect(top_left, fader.size())), stem_id
        # not behind the strips' scroll area's edge either
        viewport = panel.scroll.viewport()
        in_view = fader.mapTo(viewport, QPoint(0, 0))
        assert 0 <= in_view.y() and in_view.y() + fader.height() <= viewport.height()
    assert not panel.scroll.verticalScrollBar().isVisible()


def test_compact_strips_keep_a_gain_readout(qtbot, separated):
    separated.set_mixer_size("full")
    pump(100)
    panel = separated.mixer_panel
    panel.set_compact(True)
    strip = panel.strips["bass"]
    strip.fader.setValue(-12)  # -6 dB
    assert strip.fader.isVisible() and strip.compact_gain.isVisible()
    assert strip.compact_gain.text() == "-6.0"
    assert panel.master_compact.isVisible()


def test_lane_buttons_and_mixer_are_one_state(qtbot, separated):
    window = separated
    view, panel, mixer = window.waveform, window.mixer_panel, window.player.mixer
    lane = view.stem_lanes()["drums"]
    # a click on the lane header's M (a real mouse click on the view)
    button = lane.mute_button
    centre = button.mapToScene(button.boundingRect().center())
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.mapFromScene(centre))
    assert mixer.channel("drums").mute and panel.strips["drums"].mute.isChecked()
    assert lane.muted and lane.greyed and lane.mute_button.checked
    # and the mixer's strip drives the lane
    qtbot.mouseClick(panel.strips["bass"].solo, Qt.MouseButton.LeftButton)
    assert mixer.channel("bass").solo
    lanes = view.stem_lanes()
    assert lanes["bass"].soloed and lanes["bass"].solo_button.checked
    assert not lanes["bass"].greyed
    assert lanes["vocals"].greyed and not lanes["vocals"].muted  # silenced by the solo
    panel.strips["drums"].mute.click()  # unmute in the mixer
    assert not lanes["drums"].muted and not lanes["drums"].mute_button.checked
    lane.solo_button.callback()  # the lane's S
    assert panel.strips["drums"].solo.isChecked() and not lanes["drums"].greyed
    # the S shortcut on the selected stem goes through the same state
    window.stems.select("bass")
    window.act_solo.trigger()
    assert not mixer.channel("bass").solo and not lanes["bass"].soloed
    assert lanes["bass"].greyed  # drums is still soloed


def test_muted_lane_is_drawn_greyed(qtbot, separated):
    view = separated.waveform
    separated.mixer_panel.strips["vocals"].mute.click()
    lane = view.stem_lanes()["vocals"]
    assert lane.greyed
    assert lane.curve.opts["pen"].color().name() == GREYED_COLOR
    assert "muted" in lane.label.toPlainText()
    other = view.stem_lanes()["bass"]
    assert other.curve.opts["pen"].color().name() == other.color.lower()


def test_lanes_are_normalised_with_their_true_peak(qtbot):
    """Old code: every lane used the mixture's scale, so a stem at -40 dBFS was a flat line
    next to a silent one, with no level shown."""
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(1000, 600)
    view.show()
    stems = _stems()
    view.set_song(Envelope.compute(sum(stems.values()), SR))
    view.set_stems({s: Envelope.compute(x, SR) for s, x in stems.items()})
    lanes = view.stem_lanes()
    wind, other = lanes["wind"], lanes["other"]
    (_, _), (y0, y1) = wind.plot.getViewBox().viewRange()
    assert y1 == pytest.approx(0.01 * 1.08, rel=1e-3) and y0 == pytest.approx(-y1)
    assert "peak -40.0 dBFS" in wind.label.toPlainText()
    assert "silent" in other.label.toPlainText() and "-inf" in other.label.toPlainText()
    mix_scale = view.lane_scale(view.mix)
    assert view.lane_scale(other) == mix_scale  # silent stays a flat line
    view.set_normalise(False)  # every lane at the mixture's scale again
    assert wind.plot.getViewBox().viewRange()[1][1] == pytest.approx(mix_scale)
    assert "peak -40.0 dBFS" in wind.label.toPlainText()  # the level still shows


def test_lane_height_is_adjustable_and_lanes_scroll(qtbot, separated):
    window = separated
    view = window.waveform
    assert view.lane_height == LANE_HEIGHT >= 60
    size = window.size()
    before = view.minimumHeight()
    window.lane_height_slider.setValue(160)
    pump(50)
    assert view.lane_height == 160 and view.minimumHeight() > before + 500
    assert min(ln.plot.height() for ln in view.stem_lanes().values()) >= 159
    assert window.size() == size  # the window did not grow: the lane area scrolls
    assert window.settings.value("view/lane_height", type_=int) == 160
    # Ctrl+wheel on the lanes, as in a DAW
    pos = QPointF(300, 300)
    event = QWheelEvent(pos, view.mapToGlobal(pos), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)
    assert view.lane_height == 152 and window.lane_height_slider.value() == 152
    window.act_shorter.trigger()
    assert view.lane_height == 136
    # selecting a lane below the fold (Ctrl+Down, a strip) scrolls it into view
    window.stems.stem_selected("wind")
    pump(50)
    rect = view.lane_rect("wind")
    top = view.mapTo(window.lane_scroll.viewport(), rect.topLeft()).y()
    assert 0 <= top and top + rect.height() <= window.lane_scroll.viewport().height() + 1


def test_spectrogram_can_take_any_height(qtbot, separated):
    window = separated
    splitter = window.splitter
    total = sum(splitter.sizes())
    splitter.setSizes([0, total])  # dragged all the way up
    pump(50)
    assert window.spectrogram.height() >= total - 130
    splitter.setSizes([total, 0])  # and all the way down
    pump(50)
    assert window.spectrogram.isVisible() and window.spectrogram.height() <= 90


def test_play_button_keeps_its_width_and_status_is_readable(qtbot, separated):
    window = separated
    width = window.play_button.width()
    window.transport._state_changed("playing")
    pump(20)
    assert window.act_play.text() == "&Pause" and window.play_button.width() == width
    window.transport._state_changed("stopped")
    assert window.play_button.width() == width
    # separation status on a lane has an opaque background, not text over the waveform
    view = window.waveform
    view.set_pending(0.5)
    lane = view.stem_lanes()["vocals"]
    assert "ready up to" in lane.label.toPlainText()
    assert lane.label.fill.color().alpha() >= 230
    view.set_pending(None)
    assert math.isfinite(window.task_progress.maximum())
