"""Issue 19's last points: the loop snaps to the song's beats (bar lines on the ruler and
the navigator), the session cache shows its size and has a limit and a Clear button, tick
boxes are visible app-wide on the dark theme, and the mixer turns compact on a laptop
screen so the lanes get the room (full faders at 1600x1000)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QCheckBox, QTreeWidget, QTreeWidgetItem  # noqa: E402

from stemwright.desktop.controllers.songs import SongController  # noqa: E402
from stemwright.desktop.main_window import MainWindow, _NoPlayer  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402
from stemwright.desktop.views import waveform as waveform_module  # noqa: E402
from stemwright.desktop.views.beat_grid import BeatGrid  # noqa: E402
from stemwright.desktop.views.waveform import WaveformView  # noqa: E402
from stemwright.desktop.views.waveform_data import Envelope  # noqa: E402
from stemwright.models.analysis.tempo_key import TempoKey  # noqa: E402

pytestmark = pytest.mark.usefixtures("desktop_isolation")  # never the real user's settings

SR = 8000
BEAT = 0.5  # 120 bpm


def pump(ms: int = 50) -> None:
    app = QApplication.instance()
    for _ in range(max(ms // 10, 1)):
        app.processEvents()


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((2, int(seconds * SR)))).astype(np.float32)


def _grid(duration: float = 20.0) -> BeatGrid:
    # beats detected from 1.0 s to 9.0 s only (as the analysis sees the first minutes)
    return BeatGrid.from_analysis(np.arange(1.0, 9.01, BEAT), 120.0, duration)


# -- 1. the loop snaps to beats ----------------------------------------------------------

def test_beat_grid_covers_the_song_and_snaps():
    grid = _grid()
    assert grid.beats[0] == pytest.approx(0.0) and grid.beats[-1] == pytest.approx(20.0)
    assert grid.period == pytest.approx(BEAT)
    assert grid.snap(3.2) == pytest.approx(3.0) and grid.snap(3.3) == pytest.approx(3.5)
    assert grid.snap(15.1) == pytest.approx(15.0)  # past the analysed part: at the tempo
    assert grid.snap(-4.0) == pytest.approx(0.0) and grid.snap(99.0) == pytest.approx(20.0)
    bars = grid.bars()  # 4/4 from the first detected beat (1.0 s)
    assert bars[:3] == pytest.approx([1.0, 3.0, 5.0]) and 19.0 in bars
    # no tempo, one beat or a nonsense tempo: no grid (nothing snaps)
    assert BeatGrid.from_analysis([], None, 10.0) is None
    assert BeatGrid.from_analysis([1.0], 120.0, 10.0) is None
    assert BeatGrid.from_analysis([1.0, 2.0], 4000.0, 10.0) is None
    # a hostile length never builds a huge grid
    assert BeatGrid.from_analysis([1.0, 1.5], 120.0, 1e9) is None


@pytest.fixture
def view(qtbot):
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(1000, 300)
    view.show()
    qtbot.waitExposed(view)
    view.set_song(Envelope.compute(_noise(20), SR))
    pump(50)
    return view


def test_loop_drawn_with_shift_drag_snaps_to_beats(view, qtbot, monkeypatch):
    """Old code: a loop drawn from 2.12 s to 4.87 s stayed there, off the beat."""
    view.set_loop(1.0, 2.0, emit=False)  # (a loop before the grid is known stays)
    view.set_beat_grid(_grid())
    with qtbot.waitSignal(view.loopChanged) as blocker:
        view.mix_vb.sigLoopDrag.emit(2.12, 4.87, True)
    assert blocker.args[0] == pytest.approx((2.0, 5.0))
    # Ctrl held while drawing: placed freely
    monkeypatch.setattr(waveform_module, "held_modifiers",
                        lambda: Qt.KeyboardModifier.ControlModifier)
    view.mix_vb.sigLoopDrag.emit(2.12, 4.87, True)
    assert view.loop() == pytest.approx((2.12, 4.87))
    monkeypatch.setattr(waveform_module, "held_modifiers",
                        lambda: Qt.KeyboardModifier.NoModifier)
    # snap off, or no grid: no snapping
    view.set_snap(False)
    view.mix_vb.sigLoopDrag.emit(6.12, 7.87, True)
    assert view.loop() == pytest.approx((6.12, 7.87))
    view.set_snap(True)
    view.set_beat_grid(None)
    view.mix_vb.sigLoopDrag.emit(6.13, 7.86, True)
    assert view.loop() == pytest.approx((6.13, 7.86))


def _drag(view, start: QPoint, end: QPoint, modifiers=Qt.KeyboardModifier.NoModifier):
    """A real left-button drag on the view (press, a few moves, release)."""
    viewport = view.viewport()
    left = Qt.MouseButton.LeftButton

    def send(kind, pos, buttons):
        event = QMouseEvent(kind, QPointF(pos), QPointF(viewport.mapToGlobal(pos)), left,
                            buttons, modifiers)
        QApplication.sendEvent(viewport, event)

    send(QMouseEvent.Type.MouseButtonPress, start, left)
    for i in range(1, 9):
        pos = start + (end - start) * (i / 8)
        send(QMouseEvent.Type.MouseMove, QPoint(int(pos.x()), int(pos.y())), left)
    send(QMouseEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)
    pump(20)


def _edge_point(view, seconds: float) -> QPoint:
    vb = view.mix_vb
    (_, _), (y0, y1) = vb.viewRange()
    scene = vb.mapViewToScene(QPointF(seconds, (y0 + y1) / 2))
    return view.mapFromScene(scene)


def test_dragging_a_loop_edge_snaps_unless_shift_is_held(view, qtbot, monkeypatch):
    """Old code: a dragged loop edge stopped wherever the mouse let go of it."""
    view.set_beat_grid(_grid())
    view.set_loop(2.0, 5.0)
    # the end edge dropped at 7.4 s lands on the nearest beat, 7.5 s
    with qtbot.waitSignal(view.loopChanged) as blocker:
        _drag(view, _edge_point(view, 5.0), _edge_point(view, 7.4))
    assert blocker.args[0] == pytest.approx((2.0, 7.5))
    for lane in view.lanes:  # every lane's region shows the snapped loop
        if lane.region is not None:
            assert lane.region.getRegion() == pytest.approx((2.0, 7.5))
    assert view.nav_loop.getRegion() == pytest.approx((2.0, 7.5))
    # Shift held while dragging: the edge goes where it is dropped
    monkeypatch.setattr(waveform_module, "held_modifiers",
                        lambda: Qt.KeyboardModifier.ShiftModifier)
    with qtbot.waitSignal(view.loopChanged) as blocker:
        _drag(view, _edge_point(view, 7.5), _edge_point(view, 8.4),
              Qt.KeyboardModifier.ShiftModifier)
    assert blocker.args[0][0] == pytest.approx(2.0)
    assert blocker.args[0][1] == pytest.approx(8.4, abs=0.05)
    assert abs(blocker.args[0][1] - 8.5) > 0.04  # not snapped


def test_a_loop_moved_whole_keeps_its_length_on_the_beat(view, qtbot):
    view.set_beat_grid(_grid())
    view.set_loop(2.0, 4.0)
    with qtbot.waitSignal(view.loopChanged) as blocker:
        _drag(view, _edge_point(view, 3.0), _edge_point(view, 4.3))
    assert blocker.args[0] == pytest.approx((3.5, 5.5))


def test_bar_lines_on_the_ruler_and_the_navigator(view):
    assert view.bar_lines.xData is None or len(view.bar_lines.xData) == 0
    view.set_song(Envelope.compute(_noise(120), SR))
    view.set_beat_grid(_grid(120.0))
    bars = _grid(120.0).bars()
    assert np.unique(view.bar_lines.xData) == pytest.approx(bars)
    assert np.unique(view.nav_bars.xData) == pytest.approx(bars)
    assert view.time_axis.bars == pytest.approx(bars)  # amber marks on the ruler
    # faint: mostly transparent
    assert view.bar_lines.opts["pen"].color().alpha() < 80
    # beats only when zoomed in far enough to tell them apart
    view.zoom_fit()
    view.redraw()
    wide = view.beat_lines.isVisible()
    view.set_view_range(2.0, 4.0)
    view.redraw()
    assert view.beat_lines.isVisible() and not wide
    # another song: no grid until its own is found
    view.set_song(Envelope.compute(_noise(5), SR))
    assert view.beat_grid is None
    assert view.bar_lines.xData is None or len(view.bar_lines.xData) == 0


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(SongController, "analyse", lambda self, song: None)  # no librosa
    path = tmp_path / "song.wav"
    sf.write(path, _noise(20).T, SR)
    window = MainWindow(Settings(tmp_path / "settings.ini"), player=_NoPlayer())
    window.confirm = lambda *_args: True
    qtbot.addWidget(window)
    window.resize(1366, 728)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.songLoaded, timeout=60_000):
        window.open_file(path)
    return window


def test_window_gets_the_grid_from_the_analysis_and_remembers_the_toggle(window, tmp_path):
    songs = window.songs
    task = SimpleNamespace(song=window.song)
    songs.tempo_task = task
    songs._analysed(task, TempoKey(120.0, np.arange(1.0, 9.01, BEAT), "C major", 0.8))
    grid = window.waveform.beat_grid
    assert grid is not None and grid.snap(3.2) == pytest.approx(3.0)
    assert "120 bpm" in window.song_label.text()
    assert window.act_snap.isChecked() and window.waveform.snapping()
    # L makes a loop on beats
    window.waveform.set_view_range(0.0, 10.3)
    window.seek(1.1)
    window.act_loop.trigger()
    start, end = window.waveform.loop()
    assert start == pytest.approx(1.0) and end == pytest.approx(grid.snap(end))
    # the toggle is remembered
    window.act_snap.trigger()
    assert not window.waveform.snapping()
    assert Settings(tmp_path / "settings.ini").snap_to_beats() is False
    again = MainWindow(Settings(tmp_path / "settings.ini"), player=_NoPlayer())
    try:
        assert not again.act_snap.isChecked() and not again.waveform.snap
    finally:
        again.confirm = lambda *_args: True
        again.close()
        again.deleteLater()


# -- 2. the session cache ------------------------------------------------------------------

MB = 1024 * 1024


def _kept(song_key: str, model: str, mb: int, age_s: float) -> Path:
    """A kept separation of `mb` MB (a sparse file: no real disk used), `age_s` old."""
    from stemwright.desktop.engine.workers import sessions_dir

    folder = sessions_dir() / song_key / model
    folder.mkdir(parents=True)
    with open(folder / "vocals.npy", "wb") as f:
        f.truncate(mb * MB)
    (folder / "meta.json").write_text(json.dumps({"stems": ["vocals"], "created": 0}))
    when = time.time() - age_s
    for p in (folder / "vocals.npy", folder / "meta.json", folder):
        os.utime(p, (when, when))
    return folder


def test_preferences_show_the_cache_and_its_limit_keeps_the_open_song(window, qtbot):
    """Old code: nothing said how much the kept stems took, and nothing bounded it but a
    count of three separations."""
    from stemwright.desktop.engine.workers import session_key

    mine = _kept(session_key(window.song.path), "stemwright6", 60, 4000)  # the oldest
    old = _kept("a" * 20, "stemwright6", 60, 3000)
    newer = _kept("b" * 20, "htdemucs_6s", 60, 2000)
    writing = _kept("c" * 20, "stemwright6.part", 60, 10)  # still being written
    window.act_preferences.trigger()
    dialog = window.preferences_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.size_label.text() == "240 MB in 4 songs (4 separations)"
    assert window.settings.cache_limit_mb() == 2048  # default: 2 GB
    assert dialog.limit.value() == pytest.approx(2.0)
    dialog.limit.setValue(0.1)  # about 102 MB: the oldest go first
    dialog.apply_limit()
    assert not old.exists() and not newer.exists() and not old.parent.exists()
    assert mine.exists() and writing.exists()  # the open song's and a write in progress
    assert window.settings.cache_limit_mb() == 102
    assert dialog.size_label.text().startswith("120 MB in 2 songs")


def test_clear_cache_asks_first_and_keeps_the_open_song(window, qtbot):
    from stemwright.desktop.engine.workers import session_key

    mine = _kept(session_key(window.song.path), "stemwright6", 5, 100)
    others = [_kept(f"{i}" * 20, "stemwright6", 5, 1000 + i) for i in range(3)]
    window.open_preferences()
    dialog = window.preferences_dialog
    asked = []
    dialog.confirm = lambda title, text: asked.append(text) or False
    dialog.clear_button.click()
    assert asked and "20 MB" in asked[0] and "open song" in asked[0]
    assert all(p.exists() for p in others)  # declined: nothing removed
    dialog.confirm = lambda title, text: True
    dialog.clear_button.click()
    assert not any(p.exists() for p in others) and mine.exists()
    assert dialog.size_label.text().startswith("5 MB in 1 song ")


def test_new_stems_keep_the_cache_under_the_limit(window):
    from stemwright.desktop.engine.workers import session_key

    window.settings.set_cache_limit_mb(100)
    old = _kept("d" * 20, "stemwright6", 80, 5000)
    mine = _kept(session_key(window.song.path), "stemwright6", 80, 1)
    window.stemsKept.emit(SimpleNamespace())  # a separation was just written
    assert not old.exists() and mine.exists()


def test_dragged_stems_outlive_the_limit_but_not_clear_cache(window, qtbot):
    """A DAW may play a dragged stem from the cache: the limit never removes it; Clear
    cache does, after saying so."""
    from stemwright.desktop.controllers import cache
    from stemwright.desktop.dialogs.preferences import PreferencesDialog

    window.settings.set_cache_limit_mb(100)
    dragged = _kept("e" * 20, "drag", 150, 9000)  # older and bigger than the limit
    old = _kept("d" * 20, "stemwright6", 80, 5000)
    window.stemsKept.emit(SimpleNamespace())
    assert dragged.exists() and not old.exists()
    assert 150 * MB <= cache.dragged_size() < 151 * MB  # and its meta.json
    dialog = PreferencesDialog(window)
    qtbot.addWidget(dialog)
    assert "150 MB of it stems dragged" in dialog.size_label.text()
    asked = []
    dialog.confirm = lambda title, text: asked.append(text) or True
    dialog.clear_cache()
    assert "dragged into a DAW" in asked[0] and not dragged.exists()


# -- 3. tick boxes visible app-wide -------------------------------------------------------

def _brightest(image, rect) -> int:
    """The highest lightness (0..255) of the pixels in `rect` of `image`."""
    best = 0
    for x in range(max(rect.left(), 0), min(rect.right() + 1, image.width())):
        for y in range(max(rect.top(), 0), min(rect.bottom() + 1, image.height())):
            best = max(best, image.pixelColor(x, y).lightness())
    return best


@pytest.fixture
def themed(qapp):
    """The app themed as `stemwright gui` themes it; the test's style is put back after."""
    from PySide6.QtWidgets import QStyleFactory

    from stemwright.desktop import app as app_module

    name, palette = qapp.style().name(), qapp.palette()
    app_module.apply_theme(qapp)
    yield qapp
    qapp.setStyle(QStyleFactory.create(name or "Fusion"))
    qapp.setPalette(palette)


def test_unticked_boxes_are_visible_everywhere_on_the_dark_theme(themed, qtbot):
    """Old code: only the dialogs that set `VisibleChecks` on their own widgets had
    visible boxes; elsewhere an unticked box was nearly black on black."""
    from PySide6.QtWidgets import QStyle, QStyleOptionButton

    from stemwright.desktop.dialogs import multitrack
    from stemwright.desktop.theme import VisibleChecks

    assert isinstance(themed.style(), VisibleChecks)
    assert multitrack.VisibleChecks is VisibleChecks  # one style, no local copy
    box = QCheckBox("Normalise")
    qtbot.addWidget(box)
    box.resize(160, 30)
    box.show()
    qtbot.waitExposed(box)
    option = QStyleOptionButton()
    option.initFrom(box)
    rect = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
    image = box.grab().toImage()
    assert _brightest(image, rect) >= 150  # a light outline on the dark background
    tree = QTreeWidget()
    qtbot.addWidget(tree)
    tree.setHeaderHidden(True)
    item = QTreeWidgetItem(["a model"])
    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
    item.setCheckState(0, Qt.CheckState.Unchecked)
    tree.addTopLevelItem(item)
    tree.resize(200, 80)
    tree.show()
    qtbot.waitExposed(tree)
    row = tree.visualItemRect(item)
    image = tree.viewport().grab().toImage()
    left = row.adjusted(0, 0, -(row.width() - row.height() - 8), 0)  # the box, not the text
    assert _brightest(image, left) >= 150


# -- 4. a compact mixer on a laptop screen ------------------------------------------------

LEVELS = (0.5, 0.8, 0.3, 0.2, 0.1, 0.05)


def _separated_window(qtbot, tmp_path, size: tuple[int, int]) -> MainWindow:
    """A window of `size` showing six separated stems, each with its reference lane
    (the demo song after separating: the fullest usual view)."""
    from stemwright.desktop.engine.workers import SeparatedSong, SeparationOptions
    from stemwright.models.stems import STEM_IDS

    rng = np.random.default_rng(3)
    stems = {}
    for stem_id, level in zip(STEM_IDS, LEVELS, strict=True):
        x = rng.standard_normal((2, 2 * SR)).astype(np.float32)
        stems[stem_id] = (level * x / np.abs(x).max()).astype(np.float32)
    path = tmp_path / "six.wav"
    sf.write(path, sum(stems.values()).T, SR)
    window = MainWindow(Settings(tmp_path / "six.ini"), player=_NoPlayer())
    window.confirm = lambda *_args: True
    qtbot.addWidget(window)
    window.resize(*size)
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
    for stem_id in STEM_IDS:
        window.waveform.set_extra_lane(f"ref:{stem_id}", stem_id, 1, f"{stem_id} reference",
                                       "#888888", out.envelopes[stem_id], 28)
    pump(300)
    return window


def _lanes_in_view(window: MainWindow) -> tuple[list[str], list[str]]:
    """The stem lanes and the extra lanes wholly inside the lane area's viewport."""
    view, viewport = window.waveform, window.lane_scroll.viewport()
    seen: tuple[list[str], list[str]] = ([], [])
    for which, keys in ((0, view.stem_lanes()), (1, view.extra_lanes())):
        for key in keys:
            rect = view.lane_rect(key)
            top = view.mapTo(viewport, rect.topLeft()).y()
            if top >= 0 and top + rect.height() <= viewport.height():
                seen[which].append(key)
    return seen


def _fader_in_window(window: MainWindow, fader) -> bool:
    from PySide6.QtCore import QRect

    top_left = fader.mapTo(window, QPoint(0, 0))
    return QRect(QPoint(0, 0), window.size()).contains(QRect(top_left, fader.size()))


def test_laptop_screen_shows_three_stem_lanes_beside_a_compact_mixer(qtbot, tmp_path):
    """Old code: at 1366x768 the full mixer left the lanes ~245 px, about one and a half
    stem lanes (with their reference lanes)."""
    window = _separated_window(qtbot, tmp_path, (1366, 728))  # 768 minus the title bar
    panel = window.mixer_panel
    assert panel.slim and window.mixer_size_actions["auto"].isChecked()
    stems, extras = _lanes_in_view(window)
    assert len(stems) >= 3 and len(extras) >= 3, (stems, extras)
    # every stem still has a usable fader with its dB readout, inside the window
    for stem_id in [*panel.strips, "master"]:
        fader = panel.fader_widget(stem_id)
        assert fader.isVisible() and fader.width() >= 50, stem_id
        assert _fader_in_window(window, fader), stem_id
    slim = panel.slim_strips["bass"]
    slim.fader.setValue(-12)  # -6 dB, through the same state as the full strip
    assert slim.gain.text() == "-6.0 dB" and panel.strips["bass"].gain_label.text() == \
        "-6.0 dB"
    assert window.player.mixer.channel("bass").gain_db == pytest.approx(-6.0)
    slim.mute.click()
    assert window.player.mixer.channel("bass").mute
    assert window.waveform.stem_lanes()["bass"].muted  # and the lane shows it
    panel.strips["bass"].mute.click()  # the full strip's button drives the slim one
    assert not slim.mute.isChecked()
    # the window still fits the screen
    hint = window.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 728
    # the Compact button (or View > Mixer strips) brings the full strips back, remembered
    panel.slim_button.click()
    pump(100)
    assert not panel.slim and window.settings.mixer_size() == "full"
    assert window.mixer_size_actions["full"].isChecked()
    assert panel.strips["vocals"].fader.isVisible()
    window.mixer_size_actions["auto"].trigger()
    pump(100)
    assert panel.slim and window.settings.mixer_size() == "auto"


def test_large_screen_keeps_the_full_mixer_faders(qtbot, tmp_path):
    window = _separated_window(qtbot, tmp_path, (1600, 960))  # 1000 minus the title bar
    panel = window.mixer_panel
    assert not panel.slim and not panel.compact
    for stem_id, strip in panel.strips.items():
        assert strip.fader.isVisible() and strip.fader.height() >= 60, stem_id
        assert strip.gain_label.isVisible() and strip.gain_label.text().endswith("dB")
        assert _fader_in_window(window, strip.fader), stem_id
    assert panel.master_fader.isVisible() and _fader_in_window(window, panel.master_fader)
    stems, _extras = _lanes_in_view(window)
    assert len(stems) >= 3
    # a user who wants the compact mixer here gets it
    window.set_mixer_size("compact")
    pump(100)
    assert panel.slim and panel.height() < 120
