"""Mixer panel: strips drive the player's mixer state; meters, A/B, null test, selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from stemwright.desktop.panels.mixer import (
    LevelMeter,
    MixerPanel,
    db_to_fader,
    fader_to_db,
    format_pan,
)
from stemwright.desktop.playback import Player
from stemwright.models.remix.mixer import FADER_FLOOR_DB, channel_gains

SR = 44100


@pytest.fixture
def panel(qtbot):
    player = Player()
    rng = np.random.default_rng(0)
    stems = {s: (0.1 * rng.standard_normal((2, SR // 4))).astype(np.float32)
             for s in ("vocals", "drums", "bass", "other")}
    player.set_sources(sum(stems.values()), stems, SR)
    w = MixerPanel(player)
    qtbot.addWidget(w)
    w.set_stems(["vocals", "drums", "bass", "other"], ["electric_guitar", "wind"], -math.inf)
    w.resize(800, 360)
    w.show()
    return w


def test_strips_in_canonical_order_with_unavailable_greyed(panel) -> None:
    assert list(panel.strips) == ["vocals", "drums", "bass", "electric_guitar", "wind",
                                  "other"]
    guitar = panel.strips["electric_guitar"]
    assert not guitar.available and not guitar.fader.isEnabled()
    assert "not produced by this model" in guitar.gain_label.text().replace("\n", " ")
    assert panel.strips["vocals"].fader.isEnabled()
    assert panel.null_label.text() == "Null test: -inf dB (stems sum exactly)"
    panel.set_null_db(-62.34)
    assert "-62.3 dB" in panel.null_label.text()


def test_controls_drive_the_player(qtbot, panel) -> None:
    player = panel.player
    changes: list[None] = []
    panel.mixerChanged.connect(lambda: changes.append(None))
    strip = panel.strips["vocals"]
    qtbot.mouseClick(strip.mute, Qt.MouseButton.LeftButton)
    assert player.mixer.channels["vocals"].mute
    assert channel_gains(player.mixer)["vocals"] == (0.0, 0.0)
    panel.toggle_mute("vocals")
    assert not player.mixer.channels["vocals"].mute
    panel.toggle_solo("bass")
    g = channel_gains(player.mixer)
    assert g["bass"] == (1.0, 1.0) and g["drums"] == (0.0, 0.0)
    panel.toggle_solo("bass")
    strip.fader.setValue(db_to_fader(-6.0))
    assert player.mixer.channels["vocals"].gain_db == -6.0
    assert strip.gain_label.text() == "-6.0 dB"
    strip.fader.setValue(strip.fader.minimum())
    assert player.mixer.channels["vocals"].gain_db == -math.inf
    assert strip.gain_label.text() == "-inf dB"
    strip.pan.setValue(-50)
    assert player.mixer.channels["vocals"].pan == -0.5
    assert strip.pan_label.text() == "L50"
    qtbot.mouseDClick(strip.pan, Qt.MouseButton.LeftButton)
    assert player.mixer.channels["vocals"].pan == 0.0
    panel.master_fader.setValue(db_to_fader(-3.0))
    assert player.mixer.master_db == -3.0
    assert len(changes) >= 8
    # unavailable stems ignore shortcuts
    panel.toggle_mute("wind")
    assert "wind" not in player.mixer.channels


def test_ab_switch(qtbot, panel) -> None:
    assert panel.ab_remix.isChecked() and panel.player.mixer.source == "remix"
    qtbot.mouseClick(panel.ab_mix, Qt.MouseButton.LeftButton)
    assert panel.player.mixer.source == "mix"
    panel.toggle_ab()
    assert panel.player.mixer.source == "remix"
    panel.set_stems([], [], None)  # before separation only the mixture exists
    assert panel.ab_mix.isChecked() and not panel.ab_remix.isEnabled()


def test_selection_signal(qtbot, panel) -> None:
    with qtbot.waitSignal(panel.selectedStemChanged) as blocker:
        qtbot.mouseClick(panel.strips["drums"], Qt.MouseButton.LeftButton)
    assert blocker.args == ["drums"]
    assert panel.strips["drums"].property("selected") == "true"
    with qtbot.assertNotEmitted(panel.selectedStemChanged):
        qtbot.mouseClick(panel.strips["wind"], Qt.MouseButton.LeftButton)


def test_sync_from_player(panel) -> None:
    panel.player.set_channel("other", gain_db=-12.0, pan=0.25, mute=True)
    panel.player.set_master_db(2.0)
    panel.player.set_ab("mix")
    panel.sync_from_player()
    strip = panel.strips["other"]
    assert fader_to_db(strip.fader.value()) == -12.0
    assert strip.pan.value() == 25 and strip.mute.isChecked()
    assert panel.master_label.text() == "+2.0 dB"
    assert panel.ab_mix.isChecked()


def test_meters_read_player_levels(panel, monkeypatch) -> None:
    levels = {"vocals": -6.0, "drums": -40.0, "bass": -math.inf, "other": 1.0,
              "master": -3.0}
    monkeypatch.setattr(panel.player, "levels", lambda: dict(levels))
    panel.refresh_meters()
    assert panel.strips["vocals"].meter.level_db == -6.0
    assert panel.strips["bass"].meter.level_db == -math.inf
    assert panel.strips["other"].meter.clipped
    assert panel.master_meter.level_db == -3.0
    levels.update(vocals=-math.inf)
    panel.refresh_meters()
    assert -8.0 < panel.strips["vocals"].meter.level_db < -6.0  # falls, does not drop


def test_unavailable_playback_notice(panel) -> None:
    if panel.player.available:
        assert panel.notice.isHidden()
    else:
        assert "Playback is off" in panel.notice.text() and not panel.notice.isHidden()
        assert not panel.device_combo.isEnabled()


def test_fader_mapping_and_meter_widget(qtbot) -> None:
    assert fader_to_db(db_to_fader(-6.0)) == -6.0
    assert fader_to_db(db_to_fader(FADER_FLOOR_DB)) == -math.inf
    assert fader_to_db(db_to_fader(99.0)) == 12.0
    assert format_pan(0.0) == "C" and format_pan(1.0) == "R100"
    meter = LevelMeter()
    qtbot.addWidget(meter)
    meter.resize(10, 100)
    meter.set_level(-10.0)
    assert meter.hold_db == -10.0
    meter.grab()  # paints without error


def test_set_stems_reuses_strips_and_is_cheap(qtbot, panel) -> None:
    import time

    before = dict(panel._all_strips)
    vocals = panel.strips["vocals"]
    panel.player.set_channel("vocals", mute=True)
    times = []
    for i in range(41):  # ends with the stems shown
        t = time.perf_counter()
        if i % 2:
            panel.set_stems([], [], None)  # a new song: no strips
        else:
            panel.set_stems(["vocals", "drums", "bass", "other"], ["electric_guitar", "wind"],
                            -80.0)
        times.append((time.perf_counter() - t) * 1000)
    print(f"\nMixerPanel.set_stems: median {np.median(times):.2f} ms, max {max(times):.2f} ms")
    assert np.median(times) < 2.0
    assert panel._all_strips == before and panel.strips["vocals"] is vocals  # reused
    assert vocals.mute.isChecked()  # shows the player's state
    # a six-stem model: the guitar strip comes alive, then goes grey again
    panel.set_stems(["vocals", "drums", "bass", "electric_guitar", "other"], ["wind"], None)
    guitar = panel.strips["electric_guitar"]
    assert guitar.available and guitar.fader.isEnabled() and guitar.isVisibleTo(panel)
    assert guitar.gain_label.text() == "0.0 dB"
    panel.set_stems(["vocals", "other"], [], None)
    assert list(panel.strips) == ["vocals", "other"]
    assert not panel._all_strips["drums"].isVisibleTo(panel)
    panel.set_stems(["vocals"], ["electric_guitar"], None)
    assert not guitar.available and not guitar.fader.isEnabled()
    assert "not produced" in guitar.gain_label.text()


@pytest.mark.parametrize("height", [420, 300, 240, 180, 140])
def test_strips_are_never_cut_off_in_a_short_dock(qtbot, panel, tmp_path, height) -> None:
    """Short docks get compact strips, shorter ones a vertical scroll bar: every strip
    always keeps at least its minimum height (nothing is squeezed or cut off)."""
    from PySide6.QtWidgets import QApplication

    panel.resize(900, height)
    for _ in range(5):
        QApplication.processEvents()
    viewport = panel.scroll.viewport().height()
    host = panel.strip_host
    for widget in [*panel.strips.values(), panel.master]:
        assert widget.height() >= widget.minimumSizeHint().height()
        assert widget.geometry().bottom() <= host.height()
    scrolls = panel.scroll.verticalScrollBar().isVisible()
    assert scrolls == (host.height() > viewport)
    assert panel.compact == (height < 300)
    if panel.compact:
        assert not panel.strips["vocals"].gain_label.isVisible()
    else:
        assert panel.strips["vocals"].gain_label.isVisible() and not scrolls
    assert scrolls == (height <= 180)
    panel.grab().save(str(tmp_path / f"mixer_{height}.png"))


def test_ab_changes_are_announced(qtbot, panel) -> None:
    seen: list[str] = []
    panel.abChanged.connect(seen.append)
    qtbot.mouseClick(panel.ab_mix, Qt.MouseButton.LeftButton)
    panel.set_ab("remix")
    panel.toggle_ab()
    assert seen == ["mix", "remix", "mix"] and panel.player.mixer.source == "mix"


def test_every_stem_name_fits_its_strip(qtbot) -> None:
    """"Electric guitar" in bold is wider than a strip at the normal size: it is set
    smaller so the whole name shows, available or not."""
    player = Player()
    stems = {s: np.zeros((2, SR // 8), np.float32) for s in ("electric_guitar", "vocals")}
    player.set_sources(sum(stems.values()), stems, SR)
    w = MixerPanel(player)
    qtbot.addWidget(w)
    w.set_stems(["electric_guitar", "vocals"], ["wind"], -math.inf)
    w.show()
    qtbot.waitExposed(w)
    for strip in w.strips.values():
        strip.name.ensurePolished()
        text = strip.name.text()
        assert strip.name.fontMetrics().horizontalAdvance(text) <= strip.name.width(), text
    assert "font-size" in w.strips["electric_guitar"].name.styleSheet()
    assert "font-size" not in w.strips["vocals"].name.styleSheet()
