"""Multitrack songs in the window: the mapping dialog (scan, edit, save the mapping file),
loading a song with its reference stems as lanes, scores on the stem lanes after a real
separation, and the error signals as listen-only lanes that never enter the remix."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from stemwright.desktop.controllers.reference_lanes import ARTIF, INTERF, REF, lane_key  # noqa: E402
from stemwright.desktop.dialogs import messages as dialogs
from stemwright.desktop.dialogs.multitrack import MappingDialog, MultitrackSong  # noqa: E402
from stemwright.desktop.engine.workers import SeparationOptions  # noqa: E402
from stemwright.desktop.main_window import MainWindow  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402
from stemwright.models.multitrack.folders import MAPPING_FILE, read_mapping  # noqa: E402
from stemwright.models.remix.mixer import render_mix  # noqa: E402
from stemwright.models.synthetic.test_songs import synth_song  # noqa: E402

SR = 8000
TIMEOUT = 60_000
SHOTS = Path(os.environ.get("STEMWRIGHT_SCREENSHOTS", "")) if os.environ.get(
    "STEMWRIGHT_SCREENSHOTS") else None


def write_musdb(folder: Path, seconds: float = 3.0, seed: int = 0,
                stems: tuple[str, ...] = ("vocals", "drums", "bass", "other")) -> Path:
    """A MUSDB18-style song folder (mono, low rate): mixture.wav plus one file per stem."""
    mix, parts = synth_song(seconds, SR, seed=seed, stems=stems)
    folder.mkdir(parents=True)
    sf.write(folder / "mixture.wav", mix.mean(axis=0), SR, subtype="FLOAT")
    for stem, x in parts.items():
        sf.write(folder / f"{stem}.wav", x.mean(axis=0), SR, subtype="FLOAT")
    return folder


def write_tracks(folder: Path, seconds: float = 2.0) -> Path:
    """A studio-style song: one file per instrument, named as studios name them."""
    _, parts = synth_song(seconds, SR, seed=3, stems=("vocals", "drums", "bass", "other"))
    folder.mkdir(parents=True)
    for name, x in (("Lead Vox", parts["vocals"]), ("Kick", parts["drums"]),
                    ("Bass DI", parts["bass"]), ("Rhodes", parts["other"]),
                    ("Click", 0.01 * parts["drums"])):
        sf.write(folder / f"{name}.wav", x.T, SR, subtype="FLOAT")
    return folder


@pytest.fixture(autouse=True)
def _isolated(desktop_isolation, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")  # no engine process to start
    yield


@pytest.fixture
def window(qtbot, tmp_path) -> MainWindow:
    w = MainWindow(Settings(tmp_path / "settings.ini"))
    w.confirm = lambda *_args: True
    qtbot.addWidget(w)
    w.resize(1280, 900)
    w.show()
    qtbot.waitExposed(w)
    return w


def scanned(qtbot, dialog: MappingDialog) -> MappingDialog:
    if dialog.scan is None:
        with qtbot.waitSignal(dialog.scanned, timeout=TIMEOUT):
            pass
    return dialog


def click(qtbot, window: MainWindow, item) -> None:
    """A real mouse click on a graphics item of the waveform view."""
    view = window.waveform
    pos = view.mapFromScene(item.sceneBoundingRect().center())
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_mapping_dialog_edits_and_saves_the_mapping(qtbot, tmp_path):
    root = tmp_path / "sessions"
    write_tracks(root / "Studio Song")
    write_musdb(root / "Musdb Song", 1.0)
    dialog = MappingDialog(root)
    qtbot.addWidget(dialog)
    dialog.show()
    scanned(qtbot, dialog)
    assert dialog.songs.count() == 2 and dialog.songs.isVisible()  # a folder of songs
    dialog.songs.setCurrentRow([s.name for s in dialog.scan.songs].index("Studio Song"))
    rows = {dialog.table.item(r, 0).text(): dialog.table.cellWidget(r, 1).currentData()
            for r in range(dialog.table.rowCount())}
    assert rows == {"Bass DI.wav": "bass", "Click.wav": "ignore", "Kick.wav": "drums",
                    "Lead Vox.wav": "vocals", "Rhodes.wav": "other"}
    dialog.set_target("Rhodes.wav", "electric_guitar")  # edited like a user would
    song = dialog.current_song()
    assert "electric_guitar" in song.stems_present() and dialog.edited
    assert "edited" in dialog.info.text()
    with qtbot.waitSignal(dialog.mappingSaved, timeout=TIMEOUT) as saved:
        dialog.save_button.click()
    path = saved.args[0]
    assert path == root / MAPPING_FILE
    assert read_mapping(path)["Studio Song"]["Rhodes.wav"] == "electric_guitar"
    assert not dialog.edited and "Saved" in dialog.info.text()
    if SHOTS:
        dialog.grab().save(str(SHOTS / "mapping_dialog.png"))
    with qtbot.waitSignal(dialog.songChosen) as chosen:
        dialog.open_button.click()
    assert chosen.args[0] is song


def test_not_a_multitrack_folder_says_so(qtbot, tmp_path):
    (tmp_path / "empty").mkdir()
    dialog = MappingDialog(tmp_path / "empty")
    qtbot.addWidget(dialog)
    scanned(qtbot, dialog)
    assert "empty" in dialog.info.text() and not dialog.open_button.isEnabled()


def test_multitrack_song_references_scores_and_error_lanes(qtbot, window, tmp_path):
    folder = write_musdb(tmp_path / "songs" / "Alpha", 3.0, seed=1,
                         stems=("vocals", "drums", "bass"))
    mt = window.multitrack
    dialog = scanned(qtbot, mt.open_folder(folder.parent))  # a folder of one song
    assert not dialog.songs.isVisible()
    with qtbot.waitSignal(window.songLoaded, timeout=TIMEOUT):
        dialog.open_song()
    song = window.song
    assert isinstance(song, MultitrackSong) and mt.current() is song
    assert song.data.shape[-1] == 3 * SR and "multitrack" in window.song_label.text()
    assert window.windowTitle().startswith("Alpha")
    extra = window.waveform.extra_lanes()
    assert set(extra) == {lane_key(REF, s) for s in ("vocals", "drums", "bass")}
    qtbot.waitUntil(lambda: all(len(lane.curve.getData()[0]) > 10 for lane in extra.values()))
    # the references toggle hides and shows them
    mt.act_references.trigger()
    assert not window.waveform.extra_lanes()
    mt.act_references.trigger()
    assert len(window.waveform.extra_lanes()) == 3
    assert not mt.act_errors.isEnabled()
    # a reference can be heard alone before separating; then the song plays again
    player, ref = window.player, lane_key(REF, "drums")
    assert mt._buttons[ref].isVisible()
    mt.toggle_listen(ref)
    assert mt.listening == ref and player.mixer.channel(ref).solo
    if hasattr(player, "stem_ids"):
        assert set(player.stem_ids) == set(extra)
        gains = player._engine.gains_for(player.mixer)
        assert gains[list(player.stem_ids).index(ref)].max() > 0
        assert gains[player._engine.mix_index].max() == 0
    mt.toggle_listen(ref)
    assert mt.listening is None and player.mixer.channel(ref).mute
    if hasattr(player, "stem_ids"):
        assert player.stem_ids == ()  # the song alone again

    # a real separation, then scores on the stem lanes
    with qtbot.waitSignal(mt.scoresShown, timeout=TIMEOUT) as shown:
        window.separate(SeparationOptions(model="classic", device="cpu"))
    scores = shown.args[0]
    assert set(scores) == {"vocals", "drums", "bass"}  # other has no reference here
    lanes = window.waveform.stem_lanes()
    for stem in scores:
        html = lanes[stem].label.toHtml()
        assert "SDR" in html and "SI-SDR" in html and "dB" in html
        assert math.isfinite(scores[stem].sdr)
    assert "no reference" in lanes["other"].label.toHtml()
    assert mt.act_errors.isEnabled()

    # the errors of the vocals: two lanes under them, listen-only
    window.stems.select("vocals")
    with qtbot.waitSignal(mt.errorsShown, timeout=TIMEOUT):
        mt.act_errors.trigger()
    keys = set(window.waveform.extra_lanes())
    assert {lane_key(INTERF, "vocals"), lane_key(ARTIF, "vocals")} <= keys
    assert "SIR" in window.waveform.extra_lanes()[lane_key(INTERF, "vocals")].label.toHtml()
    err = mt.errors["vocals"]
    est = window.separated.result.stems["vocals"]
    assert err.interf.shape == est.shape and np.abs(err.interf).max() > 0

    stems = window.separated.result.stems
    remix_before = render_mix(stems, player.mixer)
    key = lane_key(INTERF, "vocals")
    mt.toggle_listen(key)
    assert mt.listening == key
    ch = player.mixer.channel(key)
    assert ch.solo and not ch.mute
    if hasattr(player, "stem_ids"):  # the real player: loaded as an extra source
        assert key in player.stem_ids and lane_key(REF, "bass") in player.stem_ids
        gains = player._engine.gains_for(player.mixer)
        ids = list(player.stem_ids)
        assert gains[ids.index(key)].max() > 0  # heard alone
        assert gains[ids.index("vocals")].max() == 0
        engine = player._engine  # what the audio callback plays: the error signal itself
        engine.seek(0)
        engine.reset_for_start()
        blocks = np.zeros((2, 1024, 2), dtype=np.float32)
        for block in blocks:
            engine.render(block)
        np.testing.assert_allclose(blocks[1, :, 0], err.interf[0, 1024:2048], atol=1e-6)
    # the remix (and so the export) never contains the extra lanes
    assert np.array_equal(render_mix(stems, player.mixer), remix_before)
    mt.toggle_listen(lane_key(REF, "drums"))  # one at a time
    assert player.mixer.channel(key).mute and not player.mixer.channel(key).solo
    assert mt.listening == lane_key(REF, "drums")
    if SHOTS:
        window.resize(1440, 960)
        qtbot.wait(200)
        window.grab().save(str(SHOTS / "window_references.png"))
    mt.toggle_listen(lane_key(REF, "drums"))
    assert mt.listening is None and player.mixer.channel(lane_key(REF, "drums")).mute

    # hiding the errors, and another separation, take the error lanes away; a cancelled
    # separation brings the scored stems back with their scores
    mt.toggle_errors("vocals")
    assert key not in window.waveform.extra_lanes()
    window.seek(1.0)
    with qtbot.waitSignal(mt.errorsShown, timeout=TIMEOUT):  # a click on the lane's button
        click(qtbot, window, mt._buttons["stem:bass"])
    assert window.waveform.playhead() == pytest.approx(1.0)  # the click did not seek
    task = window.separate(SeparationOptions(model="classic", device="cpu"))
    assert lane_key(INTERF, "bass") not in window.waveform.extra_lanes()
    assert not mt.act_errors.isEnabled() and not mt.valid_scores()
    with qtbot.waitSignal(task.finished, timeout=TIMEOUT):
        window.cancel_separation()
    qtbot.waitUntil(lambda: window.partial is None and mt.act_errors.isEnabled())
    qtbot.waitUntil(lambda: "SDR" in window.waveform.stem_lanes()["bass"].label.toHtml())
    assert set(mt.valid_scores()) == set(scores) and task.outcome == "cancelled"

    # Separation > Evaluate models starts from the folder this song was found in
    evaluate = mt.open_evaluate()
    assert evaluate.folder() == str(folder.parent)
    evaluate.close()

    # another (plain) song: references and scores go away
    path = tmp_path / "plain.wav"
    sf.write(path, np.zeros((SR, 2), dtype=np.float32), SR)
    with qtbot.waitSignal(window.songLoaded, timeout=TIMEOUT):
        window.open_file(path)
    assert mt.current() is None and not window.waveform.extra_lanes()
    assert not mt.act_references.isEnabled()


def test_folder_opened_like_a_file_goes_to_the_mapping_dialog(qtbot, window, tmp_path):
    folder = write_musdb(tmp_path / "Beta", 1.0, seed=2)
    assert window.open_file(folder) is None
    dialog = scanned(qtbot, window.multitrack.dialog)
    assert dialog.current_song().name == "Beta"
    dialog.reject()


def test_demo_song_opens_with_its_true_stems(qtbot, window, monkeypatch):
    """File > Open the demo song (and `stemwright gui resources/demo/<song>`) opens the
    bundled generated song straight away, its six true stems as reference lanes."""
    from stemwright.resources import demo_song

    window.act_demo.trigger()
    qtbot.waitUntil(lambda: isinstance(window.song, MultitrackSong), timeout=TIMEOUT)
    assert window.multitrack.dialog is None  # no mapping dialog for the demo
    song = window.song
    assert set(song.mixdown.stems) == {"vocals", "drums", "bass", "electric_guitar", "wind",
                                       "other"}
    assert "multitrack" in window.song_label.text()
    window.song = None
    assert window.open_file(demo_song()) is None
    qtbot.waitUntil(lambda: isinstance(window.song, MultitrackSong), timeout=TIMEOUT)
    # not installed: a dialog says so
    monkeypatch.setattr("stemwright.resources.demo_song", lambda: demo_song() / "nope")
    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda *a, **k: shown.append(a))
    window.open_demo()
    assert shown and "not installed" in shown[0][2]
