"""The main window end to end: opening songs every way, a real separation that never
blocks the event loop for 100 ms, cancel, shortcuts, settings, error dialogs, no audio."""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QMimeData, QPointF, Qt, QTimer, QUrl  # noqa: E402,I001
from PySide6.QtGui import QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from stemwright.desktop.dialogs import messages as dialogs
from stemwright.desktop.engine.workers import SeparationOptions, engine  # noqa: E402
from stemwright.desktop.main_window import MainWindow, _NoPlayer  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402

SR = 44100
TIMEOUT = 60_000


pytestmark = pytest.mark.usefixtures("desktop_isolation")  # never the real user's settings


@pytest.fixture(scope="module", autouse=True)
def _stop_engine():
    yield
    engine().shutdown()


def write_song(path, seconds: float = 3.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    melody = 0.2 * np.sin(2 * np.pi * 440 * (1 + 0.5 * (t % 1 > 0.5)) * t)
    bass = 0.3 * np.sin(2 * np.pi * 55 * t)
    hits = 0.4 * rng.standard_normal(len(t)) * np.exp(-(t % 0.25) * 40)
    sf.write(path, np.stack([melody + bass + hits, 0.8 * melody + bass + hits]).T, SR)
    return path


def make_window(qtbot, settings: Settings, player=None, size=(1280, 860)) -> MainWindow:
    window = MainWindow(settings, player=player)
    window.confirm = lambda *_args: True  # no blocking questions in tests
    qtbot.addWidget(window)
    if size is not None:
        window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "settings.ini")


@pytest.fixture
def window(qtbot, settings) -> MainWindow:
    return make_window(qtbot, settings)


def open_song(qtbot, window: MainWindow, path) -> None:
    with qtbot.waitSignal(window.songLoaded, timeout=TIMEOUT):
        window.open_file(path)
    qtbot.waitUntil(lambda: window.spec_task is None, timeout=TIMEOUT)


def test_open_file_shows_song_everywhere(qtbot, window, settings, tmp_path):
    path = write_song(tmp_path / "My Song.wav", 3.0)
    open_song(qtbot, window, path)
    assert window.song is not None and window.song.duration == pytest.approx(3.0)
    assert "My Song.wav" in window.windowTitle()
    assert "0:03" in window.song_label.text() and "44.1 kHz" in window.song_label.text()
    assert window.waveform.duration == pytest.approx(3.0)
    assert len(window.waveform.mix.curve.getData()[0]) > 100
    assert window.spectrogram.spec is not None  # computed off the GUI thread
    assert settings.recent_files() == [str(path.resolve())]
    assert settings.last_folder() == str(tmp_path)
    assert window.panel.separate_button.isEnabled()
    assert not window.act_export.isEnabled()  # nothing separated yet
    window.seek(1.5)
    assert window.waveform.playhead() == pytest.approx(1.5)
    assert "0:01.5" in window.position_label.text()


def test_drag_and_drop_and_recent_menu(qtbot, window, settings, tmp_path):
    first = write_song(tmp_path / "first.wav", 1.0)
    second = write_song(tmp_path / "second.flac", 1.0, seed=1)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(first))])
    drop = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.songLoaded, timeout=TIMEOUT):
        window.dropEvent(drop)
    assert drop.isAccepted() and window.song.path == first
    open_song(qtbot, window, second)
    window.songs.fill_recent_menu()
    names = [a.text() for a in window.recent_menu.actions() if a.text()]
    assert "second.flac" in names[0] and "first.wav" in names[1]
    with qtbot.waitSignal(window.songLoaded, timeout=TIMEOUT):
        window.recent_menu.actions()[1].trigger()
    assert window.song.path == first
    # text that is not a file is refused
    text = QMimeData()
    text.setText("hello")
    bad = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, text,
                     Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(bad)
    assert not bad.isAccepted()


def test_unreadable_file_gives_a_dialog_with_next_step(qtbot, window, tmp_path):
    bad = tmp_path / "not audio.mp3"
    bad.write_bytes(b"this is not an mp3 file" * 100)
    window.open_file(bad)
    qtbot.waitUntil(lambda: bool(dialogs.open_dialogs()), timeout=TIMEOUT)
    box = dialogs.open_dialogs()[-1]
    assert "not audio.mp3" in box.text()
    assert box.informativeText()  # what to do next
    assert window.song is None and window.load_task is None
    assert window.isVisible()


def test_separation_keeps_the_event_loop_responsive(qtbot, window, tmp_path):
    """A real separation (classic model, engine process): the event loop never stalls
    for 100 ms, progress and ETA reach the panel, stems become lanes, unavailable stems
    are marked, the mixer and the player get the stems."""
    open_song(qtbot, window, write_song(tmp_path / "song.wav", 4.0))
    gaps: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    progress: list[str] = []
    timer.start()
    with qtbot.waitSignal(window.separationFinished, timeout=TIMEOUT) as blocker:
        task = window.separate(SeparationOptions("classic"))
        assert task is not None
        task.progressed.connect(lambda *_: progress.append(window.panel.progress.text()))
    qtbot.wait(300)  # the repaint after the stems arrived is measured too
    timer.stop()
    print(f"\nmax event-loop gap during separation: {max(gaps)} ms over {len(gaps)} ticks "
          f"(median {int(np.median(gaps))} ms)")
    assert max(gaps) < 100
    out = blocker.args[0]
    assert out is not None and set(out.result.stems) == {"vocals", "drums", "bass", "other"}
    assert any("s left" in t or "almost done" in t for t in progress)  # "42% · about 3 s left"
    lanes = window.waveform.stem_lanes()
    assert {k for k, ln in lanes.items() if ln.available} == set(out.result.stems)
    assert {k for k, ln in lanes.items() if not ln.available} == {"electric_guitar", "wind"}
    assert window.act_export.isEnabled()
    qtbot.waitUntil(lambda: window.stems_saved, timeout=TIMEOUT)  # kept on disk
    assert window.spectrogram.source.count() == 5
    if window.mixer_panel is not None:
        strips = window.mixer_panel.strips
        assert {s for s, st in strips.items() if st.available} == set(out.result.stems)
    assert set(getattr(window.player, "stem_ids", out.result.stems)) == set(out.result.stems)
    assert "Separated with" in window.panel.status.text()
    # the spectrogram of a stem is computed on demand
    window.spectrogram.source.setCurrentIndex(window.spectrogram.source.findData("vocals"))
    qtbot.waitUntil(lambda: window.spectrogram.spec is not None
                    and window.spectrogram.spec.key == "vocals", timeout=TIMEOUT)
    window.grab().save(str(tmp_path / "window.png"))


def test_stems_appear_as_chunks_finish(qtbot, window, tmp_path):
    """Engine process, classic model, 2 s chunks over 16 s: lanes, mixer and player get
    the finished part while the rest is separated (shaded as pending); a stem can be
    soloed then and stays soloed; the event loop never stalls for 100 ms; the final stems
    replace the partial ones in place."""
    open_song(qtbot, window, write_song(tmp_path / "long.wav", 16.0))
    stems = {"vocals", "drums", "bass", "other"}
    seen: list[float] = []
    gaps: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def poll() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now
        p, pending = window.partial, window.waveform.pending()
        if window.separated is not None or p is None or pending is None:
            return
        lanes = window.waveform.stem_lanes()
        strips = window.mixer_panel.strips if window.mixer_panel is not None else {}
        if ({k for k, ln in lanes.items() if ln.available} != stems
                or set(window.player.stem_ids) != stems
                or {s for s, st in strips.items() if st.available} != stems):
            return  # the lanes are still being set up, a step per event-loop turn
        if not seen:
            assert window.act_solo.isEnabled() and not window.act_export.isEnabled()
            assert window.selected_stem() == "vocals"
            window.act_solo.trigger()  # S: solo the selected stem while separating
            engine = window.player._engine
            vocals = engine.sources[engine.stem_ids.index("vocals")]
            assert vocals is p.stems["vocals"]  # plays the buffer as it fills
            assert np.abs(vocals[:, :p.end]).max() > 0 and not vocals[:, -100:].any()
            mix = window.song.data  # not separated yet: the remix plays the song itself
            np.testing.assert_array_equal(p.stems["other"][:, -100:], mix[:, -100:])
            assert engine._target[engine.stem_ids.index("drums")].tolist() == [0, 0]
            lane = lanes["vocals"]
            assert lane.pending.isVisible() and "ready up to" in lane.label.toHtml()
            window.grab().save(str(tmp_path / "partial.png"))
            last[0] = clock.elapsed()  # the screenshot is the test's own pause
        seen.append(pending)

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(poll)
    timer.start()
    with qtbot.waitSignal(window.separationFinished, timeout=TIMEOUT) as blocker:
        task = window.separate(SeparationOptions("classic", segment=2.0))
        regions: list[int] = []
        task.partialReady.connect(lambda p: regions.append(p.end))
    qtbot.wait(200)
    timer.stop()
    print(f"\npartial results: {len(regions)} signals, the stems were playable "
          f"{len(seen)} polls before the end (first at {seen[0] if seen else None} s); "
          f"max event-loop gap {max(gaps)} ms")
    assert len(regions) >= 3 and regions == sorted(regions)
    assert seen and 0 < seen[0] < 16.0 and seen == sorted(seen)
    assert max(gaps) < 100
    out = blocker.args[0]
    assert window.separated is out and window.partial is None
    assert window.waveform.pending() is None
    assert not window.waveform.stem_lanes()["vocals"].pending.isVisible()
    assert window.player.mixer.channel("vocals").solo  # kept from the partial stems
    assert window.act_export.isEnabled()
    for stem_id in stems:
        assert window.waveform.stem_lanes()[stem_id].envelope is out.envelopes[stem_id]


def test_cancel_while_partial_stems_show_restores_the_earlier_ones(qtbot, window, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")
    open_song(qtbot, window, write_song(tmp_path / "again.wav", 6.0))
    with qtbot.waitSignal(window.stemsKept, timeout=TIMEOUT) as blocker:
        window.separate(SeparationOptions("classic", segment=3.0))
    first = blocker.args[0]
    window.stems_saved = False  # as if they were not on disk: that must not change
    task = window.separate(SeparationOptions("classic", segment=1.0))
    with qtbot.waitSignal(task.cancelled, timeout=TIMEOUT):
        qtbot.waitUntil(lambda: window.partial is not None, timeout=TIMEOUT)
        window.act_cancel.trigger()
    vocals = first.result.stems["vocals"]
    qtbot.waitUntil(lambda: window.player._engine.sources[0] is vocals, timeout=5000)
    assert window.player.stem_ids[0] == "vocals" and window.waveform.pending() is None
    assert window.waveform.stem_lanes()["other"].envelope is first.envelopes["other"]
    assert window.separated is first and window.partial is None
    assert not window.stems_saved and window.act_export.isEnabled()


def test_cancel_separation(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")
    open_song(qtbot, window, write_song(tmp_path / "long.wav", 12.0))
    task = window.separate(SeparationOptions("classic", segment=1.0))
    with qtbot.waitSignal(task.cancelled, timeout=TIMEOUT):
        qtbot.waitUntil(lambda: window.panel.progress.value() > 0, timeout=TIMEOUT)
        window.act_cancel.trigger()  # Esc
    assert window.separated is None and window.separate_task is None
    assert "cancelled" in window.panel.status.text().lower()
    assert window.panel.separate_button.isEnabled()
    assert window.waveform.stem_lanes() == {}


def test_stems_are_kept_and_restored(qtbot, window, tmp_path, monkeypatch):
    """A separation is written to the session cache; reopening the song offers its stems
    back at once (nothing lost when the window closes or the app crashes)."""
    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")
    path = write_song(tmp_path / "keepme.wav", 2.0)
    open_song(qtbot, window, path)
    assert not window.panel.restore_button.isVisibleTo(window.panel)
    with qtbot.waitSignal(window.stemsKept, timeout=TIMEOUT) as blocker:
        window.separate(SeparationOptions("classic"))
    original = blocker.args[0].result.stems
    assert window.stems_saved  # safe on disk: closing will not ask
    open_song(qtbot, window, write_song(tmp_path / "other.wav", 1.0, seed=5))
    assert window.separated is None
    open_song(qtbot, window, path)
    button = window.panel.restore_button
    assert button.isVisibleTo(window.panel) and "Classic" in window.panel.status.text()
    with qtbot.waitSignal(window.separationFinished, timeout=TIMEOUT) as blocker:
        button.click()
    restored = blocker.args[0].result.stems
    assert set(restored) == set(original)
    for stem_id, signal in original.items():
        np.testing.assert_array_equal(restored[stem_id], signal)
    assert window.stems_saved and "Restored" in window.panel.status.text()
    assert {k for k, ln in window.waveform.stem_lanes().items() if ln.available} == \
        set(original)
    # a changed file is a different song: its old stems are not offered
    write_song(path, 2.5, seed=9)
    open_song(qtbot, window, path)
    assert not button.isVisibleTo(window.panel)


def test_separation_error_shows_dialog(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")
    open_song(qtbot, window, write_song(tmp_path / "s.wav", 1.0))
    with qtbot.waitSignal(window.separationFinished, timeout=TIMEOUT) as blocker:
        window.separate(SeparationOptions("no-such-model"))
    assert blocker.args == [None]
    box = dialogs.open_dialogs()[-1]
    assert "no-such-model" in box.text() and "another model" in box.informativeText()
    assert window.panel.separate_button.isEnabled()


def test_keyboard_shortcuts_and_stem_controls(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")
    open_song(qtbot, window, write_song(tmp_path / "keys.wav", 2.0))
    shortcuts = {a.shortcut().toString() for a in window.actions()}
    assert {"Space", "Home", "L", "M", "S", "Ctrl+=", "Ctrl+0", "Ctrl+O"} <= shortcuts
    window.activateWindow()
    window.waveform.setFocus()

    def key(k, mod=Qt.KeyboardModifier.NoModifier):
        qtbot.keyClick(window.waveform, k, mod)

    key(Qt.Key.Key_L)  # loop on: a region from the playhead
    assert window.waveform.loop() is not None and window.act_loop.isChecked()
    key(Qt.Key.Key_L)  # and off
    assert window.waveform.loop() is None and not window.act_loop.isChecked()
    key(Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    x0, x1 = window.waveform.view_range()
    assert x1 - x0 == pytest.approx(1.0, rel=2e-2)
    key(Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert window.waveform.view_range() == pytest.approx((0, 2.0), abs=0.02)
    window.seek(1.2)
    key(Qt.Key.Key_Home)
    assert window.player.position() == pytest.approx(0.0, abs=0.05)
    key(Qt.Key.Key_Space)  # plays, or says why it cannot: never raises
    if window.player.state() == "playing":
        key(Qt.Key.Key_Space)
    with qtbot.waitSignal(window.separationFinished, timeout=TIMEOUT):
        window.separate(SeparationOptions("classic"))
    assert window.selected_stem() == "vocals"
    key(Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert window.selected_stem() == "drums"
    key(Qt.Key.Key_M)
    assert window.player.mixer.channel("drums").mute
    key(Qt.Key.Key_S)
    assert window.player.mixer.channel("drums").solo
    key(Qt.Key.Key_M)
    assert not window.player.mixer.channel("drums").mute
    key(Qt.Key.Key_B)
    assert window.player.mixer.source == "mix"
    key(Qt.Key.Key_B)
    assert window.player.mixer.source == "remix"
    # Ctrl+E opens the export dialog on these stems and the remix's mixer state
    key(Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    dialog = window.exporter.dialog
    if importlib.util.find_spec("stemwright.desktop.dialogs.export") is not None:
        assert dialog is not None
    if dialog is not None:
        assert dialog.isVisible() and "keys" in dialog.windowTitle()
        exported = getattr(dialog, "exported", None)
        if exported is not None:
            exported.emit([str(tmp_path / "keys - Vocals.wav")])
            assert window.stems_saved
        dialog.close()


def test_ab_switch_and_action_stay_in_step(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")
    open_song(qtbot, window, write_song(tmp_path / "ab.wav", 2.0))
    with qtbot.waitSignal(window.separationFinished, timeout=TIMEOUT):
        window.separate(SeparationOptions("classic"))
    panel = window.mixer_panel
    qtbot.waitUntil(lambda: panel.ab_remix.isEnabled(), timeout=5000)
    mixer = window.player.mixer
    qtbot.mouseClick(panel.ab_mix, Qt.MouseButton.LeftButton)  # the panel's A
    assert mixer.source == "mix" and window.act_ab.isChecked()
    window.act_ab.trigger()  # the menu / toolbar action
    assert mixer.source == "remix" and panel.ab_remix.isChecked()
    assert not window.act_ab.isChecked()
    window.waveform.setFocus()
    qtbot.keyClick(window.waveform, Qt.Key.Key_B)  # the shortcut
    assert mixer.source == "mix" and panel.ab_mix.isChecked() and window.act_ab.isChecked()
    qtbot.mouseClick(panel.ab_remix, Qt.MouseButton.LeftButton)  # the panel's B
    assert mixer.source == "remix" and not window.act_ab.isChecked()
    qtbot.keyClick(window.waveform, Qt.Key.Key_B)
    assert mixer.source == "mix" and panel.ab_mix.isChecked()


def test_shortcuts_work_with_focus_in_the_docks(qtbot, window, tmp_path, monkeypatch):
    """Every key of the F1 list reaches its action wherever the focus is in the mixer or
    the separation panel (buttons, sliders, lists, number fields); Space and M/S act."""
    from PySide6.QtGui import QKeySequence
    from PySide6.QtWidgets import QWidget

    from stemwright.desktop.main_window import SHORTCUTS

    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")
    open_song(qtbot, window, write_song(tmp_path / "focus.wav", 2.0))
    with qtbot.waitSignal(window.separationFinished, timeout=TIMEOUT):
        window.separate(SeparationOptions("classic"))
    panel = window.mixer_panel
    qtbot.waitUntil(lambda: "drums" in panel.strips, timeout=5000)
    window.activateWindow()
    strip = panel.strips["drums"]
    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton)  # select drums in the mixer
    assert window.selected_stem() == "drums"
    mixer = window.player.mixer
    for focus in (strip.fader, strip.mute, panel.ab_remix):
        focus.setFocus()
        assert QApplication.focusWidget() is focus
        qtbot.keyClick(focus, Qt.Key.Key_S)
        assert mixer.channel("drums").solo
        qtbot.keyClick(focus, Qt.Key.Key_M)
        assert mixer.channel("drums").mute
        qtbot.keyClick(focus, Qt.Key.Key_M)
        qtbot.keyClick(focus, Qt.Key.Key_S)
        assert not mixer.channel("drums").mute and not mixer.channel("drums").solo
        played: list[bool] = []
        window.act_play.triggered.connect(lambda *_a, p=played: p.append(True))
        qtbot.keyClick(focus, Qt.Key.Key_Space)  # plays, or says why it cannot
        assert played and not strip.mute.isChecked()  # Space did not press the button
        window.act_play.triggered.disconnect()
        window.act_play.triggered.connect(window.toggle_play)
        if window.player.state() == "playing":
            window.player.stop()
    # a number field still takes digits
    window.panel.advanced_button.setChecked(True)
    spin = window.panel.segment_spin
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "7")
    assert spin.value() == 7
    # every key of the F1 list, from every focusable widget of both docks
    documented = {k.strip() for keys, _ in SHORTCUTS for k in keys.replace(" and ", "/")
                  .split("/") if "drag" not in k and "wheel" not in k.lower()
                  and k.strip() not in ("Left", "Right")}  # (those are the waveform's)
    hits: dict[str, int] = {}
    actions = {}
    for act in window.actions():
        for sc in act.shortcuts():
            actions[sc.toString()] = act
    assert len(documented) == 21 and documented <= set(actions), documented - set(actions)
    for act in set(actions.values()):  # record, do not open dialogs or start work
        act.setEnabled(True)
        act.triggered.disconnect()
    for key, act in actions.items():
        act.triggered.connect(lambda *_a, k=key: hits.__setitem__(k, hits.get(k, 0) + 1))
    widgets = [w for dock in (window.mixer_dock, window.separation_dock)
               for w in dock.widget().findChildren(QWidget)
               if w.focusPolicy() != Qt.FocusPolicy.NoFocus and w.isVisible()]
    assert len(widgets) > 20
    missed = []
    for widget in widgets:
        widget.setFocus()
        if QApplication.focusWidget() is not widget:
            continue
        for key in sorted(documented):
            combo = QKeySequence(key)[0]
            hits.clear()
            qtbot.keyClick(widget, combo.key(), combo.keyboardModifiers())
            if not hits:
                missed.append((type(widget).__name__, key))
    assert missed == []


def test_no_audio_device_notice_everything_else_works(qtbot, settings, tmp_path):
    player = _NoPlayer()
    player.unavailable_reason = "no audio output device was found"
    window = make_window(qtbot, settings, player=player)
    assert "No audio output" in window.audio_notice.text()
    assert "no audio output device" in window.audio_notice.toolTip()
    open_song(qtbot, window, write_song(tmp_path / "quiet.wav", 1.0))
    window.toggle_play()
    assert "unavailable" in window.statusBar().currentMessage()
    window.seek(0.5)
    assert window.waveform.playhead() == pytest.approx(0.5)


class FakePlayingPlayer(_NoPlayer):
    """A player with a clock instead of a sound card, to watch the playhead move."""

    available = True
    unavailable_reason = ""

    def __init__(self) -> None:
        super().__init__()  # _NoPlayer is a QObject with the player's signals
        self.clock = QElapsedTimer()
        self.started_at = 0.0
        self.playing = False

    def play(self) -> None:
        self.started_at = self._pos
        self.clock.start()
        self.playing = True
        self.stateChanged.emit("playing")

    def pause(self) -> None:
        self._pos = self.position()
        self.playing = False
        self.stateChanged.emit("paused")

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def state(self) -> str:
        return "playing" if self.playing else "paused"

    def position(self) -> float:
        if self.playing:
            return self.started_at + 10 * self.clock.elapsed() / 1000  # 10x speed
        return self._pos


def test_playhead_follows_playback_smoothly(qtbot, settings, tmp_path):
    player = FakePlayingPlayer()
    window = make_window(qtbot, settings, player=player)
    open_song(qtbot, window, write_song(tmp_path / "play.wav", 8.0))
    window.waveform.set_view_range(0, 2.0)
    moves: list[float] = []
    window.waveform.mix.playhead.sigPositionChanged.connect(
        lambda line: moves.append(line.value()))
    window.toggle_play()
    qtbot.wait(400)  # ~4 s of song at 10x
    window.toggle_play()
    assert len(moves) >= 6  # ~30 updates per second
    assert moves == sorted(moves) and moves[-1] > 2.0
    x0, x1 = window.waveform.view_range()
    assert x0 <= moves[-1] <= x1  # the view paged along with the playhead
    assert window.spectrogram.playhead.value() == pytest.approx(moves[-1], abs=0.5)


def test_models_can_be_downloaded_from_the_panel(qtbot, window, monkeypatch, tmp_path):
    from stemwright.models.zoo import catalog as zoo

    installed: set[str] = set()

    def fake_download(name, progress=None, cancel=None):
        for done in range(0, 81, 20):
            progress(done * 1_000_000, 80_000_000)
        installed.add(name)
        return tmp_path

    monkeypatch.setattr(zoo, "download_model", fake_download)
    monkeypatch.setattr(zoo, "is_installed", lambda name: name in installed)
    panel = window.panel
    panel.set_model("htdemucs")
    size = f"{zoo.get_entry('htdemucs').size_mb:.0f} MB"
    assert panel.download_button.isVisibleTo(panel) and size in panel.download_button.text()
    assert "download" in panel.model_combo.currentText().lower()
    assert not panel.model_ready()
    with qtbot.waitSignal(panel.modelsChanged, timeout=TIMEOUT):
        panel.download_button.click()
    assert panel.model_ready() and not panel.download_button.isVisibleTo(panel)
    assert "installed" in panel.status.text()
    assert "download" not in panel.model_combo.currentText().lower()


def test_settings_and_layout_persist(qtbot, settings, tmp_path):
    window = make_window(qtbot, settings)
    open_song(qtbot, window, write_song(tmp_path / "keep.wav", 1.0))
    window.resize(900, 700)  # the offscreen screen is 800x800
    window.separation_dock.hide()
    window.spectrogram.set_log_frequency(False)
    window.panel.advanced_button.setChecked(True)
    window.panel.segment_spin.setValue(7.5)
    window.close()
    settings.sync()
    again = Settings(tmp_path / "settings.ini")
    assert again.window_geometry() is not None and again.window_state() is not None
    assert again.log_frequency() is False and again.segment() == 7.5
    second = make_window(qtbot, again, size=None)
    assert second.size().height() == 700  # (the width is clamped to the small screen)
    assert not second.separation_dock.isVisible()  # dock layout restored
    assert not second.spectrogram.log_frequency()
    assert second.panel.options().segment == 7.5
    assert again.recent_files() == [str((tmp_path / "keep.wav").resolve())]


def test_unexported_stems_are_not_lost_silently(qtbot, window, tmp_path):
    asked: list[str] = []
    window.confirm = lambda title, text: asked.append(text) or False
    window.song = SimpleNamespace(path=tmp_path / "x.wav")  # any song
    window.separated = object()
    window.stems_saved = False
    window.close()
    assert window.isVisible() and asked and "not been exported or saved" in asked[0]
    window.stems_saved = True
    window.song = None
    window.separated = None


def test_excepthook_shows_a_dialog_instead_of_dying(qtbot, window):
    old_hook, old_thread_hook = sys.excepthook, threading.excepthook
    dialogs.install_excepthook(lambda: window)
    try:
        try:
            raise RuntimeError("unexpected thing")
        except RuntimeError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        box = dialogs.open_dialogs()[-1]
        assert "unexpected thing" in box.text() and "bug" in box.informativeText()
        assert "RuntimeError" in box.detailedText()
        worker = threading.Thread(target=lambda: 1 / 0)
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: any("ZeroDivisionError" in b.text()
                                    for b in dialogs.open_dialogs()), timeout=5000)
        assert window.isVisible()
    finally:
        sys.excepthook, threading.excepthook = old_hook, old_thread_hook
    assert isinstance(QApplication.instance(), QApplication)
    assert all(isinstance(b, QMessageBox) for b in dialogs.open_dialogs())


def test_run_opens_the_file_given_on_the_command_line(qtbot, tmp_path, monkeypatch):
    from stemwright.desktop import app as app_module

    path = write_song(tmp_path / "cli.wav", 1.0)
    seen: dict = {}
    monkeypatch.setattr(app_module, "MainWindow",
                        lambda **kw: _quiet(MainWindow(**{**kw, "warm_up_engine": False})))

    def fake_exec(_app) -> int:  # the real loop would end the session's QApplication
        win = [w for w in QApplication.topLevelWidgets()
               if isinstance(w, MainWindow) and w.isVisible()][-1]
        qtbot.waitUntil(lambda: win.song is not None, timeout=TIMEOUT)
        seen["title"] = win.windowTitle()
        seen["hook"] = sys.excepthook
        win.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    old_hook, old_thread_hook = sys.excepthook, threading.excepthook
    try:
        assert app_module.run(str(path)) == 0
    finally:
        sys.excepthook, threading.excepthook = old_hook, old_thread_hook
    assert "cli.wav" in seen["title"]
    assert seen["hook"] is dialogs.handle_exception  # the crash guard is installed


def _quiet(window: MainWindow) -> MainWindow:
    window.confirm = lambda *_args: True
    return window
