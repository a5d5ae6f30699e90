"""Waveform and spectrogram views: envelopes, drawing speed, zoom, lanes, loop, seeking."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, Qt  # noqa: E402

from stemwright.desktop.views.lane_items import TimeAxis  # noqa: E402
from stemwright.desktop.views.spectrogram import (  # noqa: E402
    FrequencyAxis,
    SpectrogramView,
    format_hz,
)
from stemwright.desktop.views.spectrogram_data import compute_spectrogram  # noqa: E402
from stemwright.desktop.views.waveform import WaveformView  # noqa: E402
from stemwright.desktop.views.waveform_data import Envelope, format_time  # noqa: E402
from stemwright.models.errors import Cancelled  # noqa: E402

SR = 44100


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def _noise(seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((channels, int(seconds * SR)))).astype(np.float32)


# -- pure helpers ----------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "step", "text"), [
    (0, 1, "0:00"), (5, 1, "0:05"), (65, 5, "1:05"), (600, 60, "10:00"),
    (3725, 60, "1:02:05"), (1.25, 0.5, "0:01.2"), (1.25, 0.01, "0:01.25"),
    (61.5, 0.1, "1:01.5"), (-2, 1, "-0:02"),
])
def test_format_time(seconds, step, text):
    assert format_time(seconds, step) == text


def test_time_axis_uses_round_steps_and_mm_ss(qapp):
    axis = TimeAxis("top")
    (major, _), (minor, _) = axis.tickSpacing(0, 600, 1000)
    assert major in (60, 120) and minor < major
    assert axis.tickStrings([0, 60, 90], 1, 30) == ["0:00", "1:00", "1:30"]
    (major, _), _ = axis.tickSpacing(0, 0.5, 1000)
    assert major <= 0.05
    assert axis.tickStrings([0.05], 1, 0.05) == ["0:00.05"]


def test_envelope_matches_brute_force_min_max():
    x = _noise(1.3, channels=2, seed=3)
    env = Envelope.compute(x, SR)
    block, mins, maxs = env.levels[0]
    assert block == Envelope.BASE_BLOCK
    n = x.shape[1]
    assert len(mins) == math.ceil(n / block)
    for i in (0, 1, 100, len(mins) - 1):
        seg = x[:, i * block:(i + 1) * block]
        assert mins[i] == seg.min() and maxs[i] == seg.max()
    # coarser levels are consistent with the finest
    for blk, mn, mx in env.levels[1:]:
        assert mn.min() == x.min() and mx.max() == x.max()
        assert len(mn) == math.ceil(n / blk)


def test_envelope_slice_point_budget_and_sample_zoom():
    x = _noise(30, channels=1)
    env = Envelope.compute(x, SR)
    xs, ys = env.slice(0, 30, 1000)
    assert 2 * 400 <= len(xs) <= 2 * 1000 + 8
    assert ys.max() <= x.max() and ys.min() >= x.min()
    assert np.all(np.diff(xs) >= 0)
    # zoomed to 2 ms: raw samples, exact values
    xs, ys = env.slice(1.0, 1.002, 1000)
    i = int(round(xs[0] * SR))
    np.testing.assert_allclose(ys, x[0, i:i + len(ys)])


def test_envelope_of_mono_1d_and_empty():
    env = Envelope.compute(np.zeros(10, dtype=np.float32), SR)
    assert env.length == 10
    xs, ys = env.slice(0, 1, 100)
    assert len(xs) == 10 and not ys.any()
    with pytest.raises(Cancelled):
        Envelope.compute(_noise(1), SR, cancel=lambda: True)


def test_ten_minute_song_envelope_and_draw_time(qtbot):
    """A 10-minute stereo song: envelope well under a second, first draw instant."""
    x = np.zeros((2, 600 * SR), dtype=np.float32)
    x[:, ::97] = 0.5
    t0 = time.perf_counter()
    env = Envelope.compute(x, SR)
    compute_s = time.perf_counter() - t0
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(1600, 500)
    view.show()
    qtbot.waitExposed(view)
    t0 = time.perf_counter()
    view.set_song(env, "Mixture")
    view.grab()
    draw_ms = (time.perf_counter() - t0) * 1000
    points = len(view.mix.curve.getData()[0])
    print(f"10-min song: envelope {compute_s:.2f} s, set_song + first paint {draw_ms:.1f} ms, "
          f"{points} points")
    assert compute_s < 3.0
    assert draw_ms < 250  # typically ~10 ms
    assert points <= 2 * 2 * 1600 + 16


# -- waveform view ---------------------------------------------------------------------

@pytest.fixture
def view(qtbot):
    v = WaveformView()
    qtbot.addWidget(v)
    v.resize(1000, 500)
    v.show()
    qtbot.waitExposed(v)
    v.set_song(Envelope.compute(_noise(20), SR), "Mixture")
    return v


def test_zoom_scroll_and_limits(view):
    assert view.view_range() == pytest.approx((0, 20), abs=1e-6)
    view.set_playhead(10.0)
    view.zoom(4.0)
    x0, x1 = view.view_range()
    assert x1 - x0 == pytest.approx(5.0, rel=1e-3)
    assert x0 <= 10.0 <= x1  # zoom keeps the playhead in view
    view.scroll(0.5)
    assert view.view_range()[0] == pytest.approx(x0 + 2.5, rel=1e-3)
    view.scroll(-100)  # clamped at the start
    assert view.view_range()[0] == pytest.approx(0.0, abs=1e-6)
    view.zoom_fit()
    assert view.view_range() == pytest.approx((0, 20), abs=1e-6)
    view.zoom(0.25)  # cannot zoom out past the song
    assert view.view_range()[1] - view.view_range()[0] <= 20 + 1e-6


def test_navigator_box_follows_and_drives_the_view(view):
    view.set_view_range(4, 8)
    assert view.nav_box.getRegion() == pytest.approx((4, 8), abs=1e-6)
    view.nav_box.setRegion((10, 14))
    assert view.view_range() == pytest.approx((10, 14), abs=1e-6)


def test_ensure_visible_pages_to_the_playhead(view):
    view.set_view_range(0, 5)
    view.ensure_visible(12.0)
    x0, x1 = view.view_range()
    assert x0 <= 12.0 <= x1 and x1 - x0 == pytest.approx(5, rel=1e-3)


def test_stem_lanes_and_unavailable_rows(view):
    stems = {s: Envelope.compute(_noise(20, seed=i), SR)
             for i, s in enumerate(("vocals", "drums", "bass", "other"))}
    view.set_stems(stems, ("electric_guitar", "wind"), "Classic")
    lanes = view.stem_lanes()
    assert set(lanes) == {"vocals", "drums", "bass", "other", "electric_guitar", "wind"}
    for stem_id in stems:
        assert lanes[stem_id].available
        assert len(lanes[stem_id].curve.getData()[0]) > 100
    for stem_id in ("electric_guitar", "wind"):
        lane = lanes[stem_id]
        assert not lane.available
        assert lane.curve.getData()[0] is None or len(lane.curve.getData()[0]) == 0
        assert lane.plot.maximumHeight() <= 30  # a thin notice, not an empty lane
        assert "not produced by Classic" in lane.label.toHtml()
    # a model without some stems at all: no lane for them
    view.set_stems({"vocals": stems["vocals"]}, ())
    assert set(view.stem_lanes()) == {"vocals"}
    view.clear_stems()
    assert view.stem_lanes() == {}


def test_lanes_share_the_time_axis(view, qtbot):
    stems = {"vocals": Envelope.compute(_noise(20), SR)}
    view.set_stems(stems, ())
    qtbot.wait(20)  # let the layout give the new lane its width
    view.set_view_range(3, 6)
    (x0, x1), _ = view.stem_lanes()["vocals"].plot.getViewBox().viewRange()
    assert (x0, x1) == pytest.approx((3, 6), abs=1e-6)


def test_loop_region(view, qtbot):
    stems = {"drums": Envelope.compute(_noise(20), SR)}
    view.set_stems(stems, ("wind",))
    with qtbot.waitSignal(view.loopChanged) as blocker:
        view.set_loop(2.0, 5.0)
    assert blocker.args == [(2.0, 5.0)]
    assert view.mix.region.getRegion() == pytest.approx((2, 5))
    assert view.stem_lanes()["drums"].region.getRegion() == pytest.approx((2, 5))
    assert view.stem_lanes()["wind"].region is None
    # dragging one lane's region moves the others
    view.stem_lanes()["drums"].region.setRegion((3, 7))
    assert view.mix.region.getRegion() == pytest.approx((3, 7))
    # shift-drag gesture (as the view box reports it) draws a new loop
    with qtbot.waitSignal(view.loopChanged) as blocker:
        view.mix_vb.sigLoopDrag.emit(9.0, 12.0, True)
    assert blocker.args[0] == pytest.approx((9, 12))
    with qtbot.waitSignal(view.loopChanged) as blocker:
        view.clear_loop()
    assert blocker.args == [None] and view.mix.region is None


def test_click_seeks_and_selects_lane(view, qtbot):
    stems = {"bass": Envelope.compute(_noise(20), SR)}
    view.set_stems(stems, ())
    qtbot.wait(50)
    vb = view.mix_vb
    scene_pt = vb.mapToScene(vb.boundingRect().center())
    target = vb.mapSceneToView(scene_pt).x()
    widget_pt = view.mapFromScene(scene_pt)
    with qtbot.waitSignal(view.seekRequested) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=widget_pt)
    assert blocker.args[0] == pytest.approx(target, abs=0.1)
    lane_vb = view.stem_lanes()["bass"].plot.getViewBox()
    centre = view.mapFromScene(lane_vb.mapToScene(lane_vb.boundingRect().center()))
    with qtbot.waitSignal(view.stemSelected) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         pos=QPoint(centre.x(), centre.y()))
    assert blocker.args == ["bass"] and view.selected_stem() == "bass"


def test_playhead_moves_in_every_lane(view):
    view.set_stems({"vocals": Envelope.compute(_noise(20), SR)}, ())
    view.set_playhead(7.5)
    assert view.mix.playhead.value() == 7.5
    assert view.stem_lanes()["vocals"].playhead.value() == 7.5
    assert view.nav_playhead.value() == 7.5


# -- spectrogram -----------------------------------------------------------------------

def test_spectrogram_finds_a_tone():
    t = np.arange(2 * SR) / SR
    x = np.stack([np.sin(2 * np.pi * 1000 * t)] * 2).astype(np.float32)
    spec = compute_spectrogram(x, SR, n_fft=2048)
    peak_bin = int(np.argmax(spec.db[spec.db.shape[0] // 2]))
    assert abs(spec.freqs[peak_bin] - 1000) < SR / 2048
    assert spec.db.max() == 0.0
    assert spec.duration == pytest.approx(2.0)
    log = spec.log_image()
    targets = np.geomspace(30, SR / 2, log.shape[1])
    assert abs(targets[int(np.argmax(log[log.shape[0] // 2]))] - 1000) < 60
    rgba = spec.image(True)
    assert rgba.dtype == np.uint8 and rgba.shape[-1] == 4


def test_spectrogram_frames_are_capped_for_long_songs():
    x = np.zeros(600 * SR, dtype=np.float32)
    spec = compute_spectrogram(x, SR, max_frames=2000)
    assert spec.db.shape[0] <= 2001
    with pytest.raises(Cancelled):
        compute_spectrogram(x, SR, cancel=lambda: True)


def test_frequency_axis_labels(qapp):
    assert format_hz(100) == "100" and format_hz(1000) == "1k" and format_hz(2500) == "2.5k"
    axis = FrequencyAxis("left")
    axis.log = True
    ticks = axis.tickValues(math.log10(30), math.log10(22050), 300)
    labels = axis.tickStrings(ticks[0][1], 1, 1)
    assert "100" in labels and "1k" in labels and "10k" in labels


def test_spectrogram_view_log_linear_toggle(qtbot):
    view = SpectrogramView(log_frequency=True)
    qtbot.addWidget(view)
    view.resize(800, 250)
    view.show()
    spec = compute_spectrogram(_noise(3), SR)
    view.set_spectrogram(spec)
    (y0, y1) = view.vb.viewRange()[1]
    assert y1 == pytest.approx(math.log10(SR / 2), abs=1e-3)
    with qtbot.waitSignal(view.logFrequencyChanged) as blocker:
        view.scale.setCurrentIndex(1)
    assert blocker.args == [False]
    (y0, y1) = view.vb.viewRange()[1]
    assert (y0, y1) == pytest.approx((0, SR / 2), rel=1e-3)
    assert view.image.image.shape[1] <= 512
    view.set_sources([("vocals", "Vocals")])
    assert view.source.count() == 2
    with qtbot.waitSignal(view.sourceChanged) as blocker:
        view.source.setCurrentIndex(1)
    assert blocker.args == ["vocals"]
    view.set_loop((1.0, 2.0))
    assert view.loop_region.isVisible()
    view.set_loop(None)
    assert not view.loop_region.isVisible()


# -- stems while separating ------------------------------------------------------------

def test_envelope_filled_region_by_region_matches_compute():
    rng = np.random.default_rng(5)
    final = (0.3 * rng.standard_normal((2, 200_003))).astype(np.float32)
    buffer = np.zeros_like(final)
    env = Envelope.zeros(buffer, SR)
    assert [lvl[0] for lvl in env.levels] == \
        [lvl[0] for lvl in Envelope.compute(buffer, SR).levels]
    assert env.peak == 0.0
    edges = [0, 1, 17, 5000, 33_333, 100_000, 150_001, 200_003]
    for a, b in zip(edges, edges[1:], strict=False):
        buffer[:, a:b] = final[:, a:b]
        env.update(a, b)
        partial = Envelope.compute(buffer, SR)
        for (_, mn, mx), (_, mn2, mx2) in zip(env.levels, partial.levels, strict=True):
            np.testing.assert_array_equal(mn, mn2)
            np.testing.assert_array_equal(mx, mx2)
    mono = np.zeros((1, 1000), np.float32)
    env = Envelope.zeros(mono, SR)
    mono[0, 500:] = 0.5
    env.update(500, 1000)
    assert env.peak == pytest.approx(0.5)


def test_pending_part_of_the_stem_lanes_is_shaded(view):
    buffers = {s: np.zeros((2, 20 * SR), np.float32) for s in ("vocals", "drums")}
    envelopes = {s: Envelope.zeros(b, SR) for s, b in buffers.items()}
    view.set_pending(6.0)
    view.set_stems(envelopes, ("wind",), "Classic")
    lanes = view.stem_lanes()
    for stem_id in buffers:
        lane = lanes[stem_id]
        assert lane.pending is not None and lane.pending.isVisible()
        assert lane.pending.getRegion() == pytest.approx((6.0, 20.0))
        assert "ready up to 0:06" in lane.label.toHtml()
    assert lanes["wind"].pending is None  # a "not produced" row has nothing pending
    view.set_pending(12.5)
    assert lanes["vocals"].pending.getRegion() == pytest.approx((12.5, 20.0))
    assert view.pending() == 12.5
    view.set_pending(None)
    assert not lanes["vocals"].pending.isVisible()
    assert "ready up to" not in lanes["vocals"].label.toHtml()
    view.set_pending(3.0)
    view.clear_stems()
    view.set_stems(envelopes, ())
    assert view.stem_lanes()["drums"].pending.isVisible()  # still separating


def test_empty_spectrogram_says_what_it_is_for(qtbot):
    from stemwright.desktop.views.spectrogram import SpectrogramView

    view = SpectrogramView()
    qtbot.addWidget(view)
    view.resize(600, 200)
    view.show()
    assert view.placeholder.isVisible() and "spectrogram" in view.placeholder.text()
    assert view.placeholder.width() > 0
    x = np.random.default_rng(0).standard_normal((2, SR)).astype(np.float32)
    view.set_spectrogram(compute_spectrogram(x, SR))
    assert not view.placeholder.isVisible()
    view.set_spectrogram(None)
    assert view.placeholder.isVisible()
