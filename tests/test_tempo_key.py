"""Tempo and key detection (models/analysis) and the REAPER project's tempo and mixer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from stemwright.models.analysis.tempo_key import (
    ANALYSIS_RATE,
    MAX_SECONDS,
    TempoKey,
    analysis_input,
    detect_key,
    detect_tempo_key,
)

SR = 22050


def click_track(bpm: float, seconds: float = 16.0, sr: int = SR) -> np.ndarray:
    """Stereo [2, T]: a short decaying 1 kHz click on every beat."""
    n = int(seconds * sr)
    x = np.zeros(n, dtype=np.float32)
    t = np.arange(int(0.03 * sr)) / sr
    click = (np.sin(2 * np.pi * 1000 * t) * np.exp(-t * 150)).astype(np.float32)
    for start in np.arange(0.5, seconds - 0.1, 60.0 / bpm):
        i = int(start * sr)
        x[i:i + click.size] += click[:n - i]
    return np.stack([x, x])


def _note(midi: int, seconds: float, sr: int) -> np.ndarray:
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))


def chords(progression: list[list[int]], seconds: float = 1.0, sr: int = SR,
           repeats: int = 2) -> np.ndarray:
    """Stereo [2, T]: each chord (MIDI notes) held `seconds`, the progression repeated."""
    parts = [sum(_note(m, seconds, sr) for m in chord) for chord in progression] * repeats
    x = (0.1 * np.concatenate(parts)).astype(np.float32)
    return np.stack([x, x])


@pytest.mark.parametrize("bpm", [84, 128])
def test_click_track_tempo(bpm: int) -> None:
    found = detect_tempo_key(click_track(bpm), SR)
    assert found.bpm is not None and abs(found.bpm - bpm) <= 1.0, found.bpm
    gaps = np.diff(found.beats)
    assert len(found.beats) > 10 and abs(np.median(gaps) - 60.0 / bpm) < 0.02


def test_a_major_progression() -> None:
    # I-IV-V-I in A major: A, D, E, A (with the bass note an octave down)
    prog = [[45, 57, 61, 64], [50, 62, 66, 69], [52, 64, 68, 71], [45, 57, 61, 64]]
    found = detect_tempo_key(chords(prog), SR)
    assert found.key == "A major" and 0 < found.key_confidence <= 1


def test_c_minor_progression_at_44100() -> None:
    # i-iv-V-i in C minor: Cm, Fm, G, Cm (at 44.1 kHz: resampled for the analysis)
    prog = [[36, 48, 51, 55], [41, 53, 56, 60], [43, 55, 59, 62], [36, 48, 51, 55]]
    found = detect_tempo_key(chords(prog, sr=44100), 44100)
    assert found.key == "C minor"


def test_silence_and_short_audio_give_nothing() -> None:
    for audio in (np.zeros((2, 10 * SR), np.float32), np.zeros((2, 100), np.float32),
                  np.zeros((1, 0), np.float32)):
        found = detect_tempo_key(audio, SR)
        assert found.bpm is None and found.key is None and found.beats.size == 0
        assert found.describe() == ""


def test_key_names_and_describe() -> None:
    assert detect_key(np.ones(12)) == (None, 0.0)
    eb = np.roll(np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66,
                           2.29, 2.88]), 3)
    assert detect_key(eb)[0] == "Eb major"
    assert TempoKey(84.2, key="Eb major").describe() == "84 bpm, Eb major"


def test_long_song_is_bounded() -> None:
    # ten minutes of audio: only the first two are analysed
    audio = np.tile(click_track(100, seconds=10.0), 60)
    assert analysis_input(audio, SR).size == MAX_SECONDS * ANALYSIS_RATE  # bounded work
    found = detect_tempo_key(audio, SR)
    assert found.beats.size and found.beats.max() <= 120.5


# -- the REAPER project: tempo, mixer, file mode -----------------------------------------

def _stems() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {s: (0.05 * rng.standard_normal((2, 4410))).astype(np.float32)
            for s in ("vocals", "drums", "bass", "other")}


def _tracks(text: str) -> dict[str, list[str]]:
    """Each track's lines by its name."""
    out: dict[str, list[str]] = {}
    for block in text.split("  <TRACK ")[1:]:
        lines = [ln.strip() for ln in block.splitlines()]
        name = next(ln for ln in lines if ln.startswith("NAME "))[5:].strip('"')
        out[name] = lines
    return out


def test_rpp_tempo_and_mixer(tmp_path: Path) -> None:
    from stemwright.models.remix.export import export_daw_session, reaper_project_text
    from stemwright.models.remix.mixer import MixerState

    state = MixerState.for_stems(["vocals", "drums", "bass", "other"])
    state.channel("vocals").mute = True
    state.channel("drums").solo = True
    state.channel("bass").pan = -0.5
    state.channel("bass").gain_db = -6.0
    state.channel("other").gain_db = -80.0  # below the fader floor: off
    state.master_db = 6.0
    written = export_daw_session(_stems(), 44100, tmp_path, "Song", bpm=84.0, mixer=state)
    text = written[-1].read_text(encoding="utf-8")
    assert "  TEMPO 84 4 4" in text.splitlines()
    master = float(next(ln for ln in text.splitlines() if "MASTER_VOLUME" in ln).split()[1])
    assert master == pytest.approx(10 ** (6 / 20))
    tracks = _tracks(text)
    assert "MUTESOLO 1 0 0" in tracks["Vocals"] and "MUTESOLO 0 1 0" in tracks["Drums"]
    bass = next(ln for ln in tracks["Bass"] if ln.startswith("VOLPAN")).split()
    assert float(bass[1]) == pytest.approx(10 ** (-6 / 20)) and float(bass[2]) == -0.5
    assert next(ln for ln in tracks["Other"] if ln.startswith("VOLPAN")).split()[1] == "0"
    # unknown tempo and no mixer: REAPER's defaults, flat tracks (existing callers)
    plain = reaper_project_text([("Vocals", "#ff0000", tmp_path / "v.wav")], 44100, 1.0,
                                tmp_path)
    assert "  TEMPO 120 4 4" in plain.splitlines()
    assert "VOLPAN 1 0 -1 -1 1" in _tracks(plain)["Vocals"]
    assert "MUTESOLO 0 0 0" in _tracks(plain)["Vocals"]


def test_rpp_refuses_a_bad_tempo(tmp_path: Path) -> None:
    from stemwright.models.errors import StemwrightError
    from stemwright.models.remix.export import export_daw_session

    for bpm in (0.0, float("nan"), 5000.0):
        with pytest.raises(StemwrightError, match="tempo"):
            export_daw_session(_stems(), 44100, tmp_path, "Song", bpm=bpm)
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_rpp_mode_follows_umask(tmp_path: Path) -> None:
    from stemwright.models.remix.export import export_daw_session, write_reaper_project

    old = os.umask(0o022)
    try:
        written = export_daw_session(_stems(), 44100, tmp_path / "a", "Song", bpm=128.0)
        project = write_reaper_project(tmp_path / "b" / "Song.RPP",
                                       [("Vocals", "#ff0000", written[0])], 44100, 0.1,
                                       bpm=128.0)
    finally:
        os.umask(old)
    for path in (*written, project):
        assert (path.stat().st_mode & 0o777) == 0o644, path


def test_export_dialog_passes_mixer_and_tempo_to_the_project(qtbot, tmp_path: Path,
                                                             monkeypatch) -> None:
    pytest.importorskip("PySide6")
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings

    from stemwright.desktop.dialogs.export import ExportDialog
    from stemwright.models.remix.mixer import MixerState

    stems = _stems()
    state = MixerState.for_stems(stems)
    state.channel("vocals").mute = True
    qsettings = QSettings(str(tmp_path / "export.ini"), QSettings.Format.IniFormat)
    dialog = ExportDialog(None, stems, 44100, "My Song", state, qsettings, bpm=97.5)
    qtbot.addWidget(dialog)
    dialog.set_mode("daw")
    monkeypatch.setattr(dialog, "folder", lambda: tmp_path / "out")
    job = dialog.build_job()
    state.channel("vocals").mute = False  # changed after pressing Export: not exported
    written = job.run(overwrite=False)
    text = written[-1].read_text(encoding="utf-8")
    assert "  TEMPO 97.5 4 4" in text.splitlines()
    assert "MUTESOLO 1 0 0" in _tracks(text)["Vocals"]


def test_the_app_shows_the_tempo_and_key_after_loading(qtbot) -> None:
    pytest.importorskip("PySide6")
    pytest.importorskip("pytestqt")
    from types import SimpleNamespace

    from PySide6.QtWidgets import QLabel

    from stemwright.desktop.controllers.songs import _ANALYSES, SongController

    song = SimpleNamespace(data=click_track(84, seconds=8.0), samplerate=SR, duration=8.0)
    label = QLabel("My Song.wav  \u00b7  0:08")
    qtbot.addWidget(label)
    grids: list = []
    waveform = SimpleNamespace(set_beat_grid=grids.append)
    window = SimpleNamespace(song=song, song_label=label, start_task=lambda t: t.start(),
                             waveform=waveform)
    controller = SongController(window)
    controller.analyse(song)
    qtbot.waitUntil(lambda: controller.tempo_key is not None, timeout=30_000)
    assert label.text().startswith("My Song.wav  \u00b7  0:08  \u00b7  84 bpm")
    assert controller.tempo_task is None
    assert len(grids) == 1 and grids[0] is not None  # the loop can snap to its beats
    # a song replaced before its analysis ends: the old result is not shown
    other = SimpleNamespace(data=click_track(128, seconds=8.0), samplerate=SR, duration=8.0)
    stale = controller.analyse(other)
    window.song = song
    # its results are delivered before `finished`, which empties `_ANALYSES`
    qtbot.waitUntil(lambda: stale.isFinished() and not _ANALYSES, timeout=30_000)
    assert controller.tempo_key is None and "128" not in label.text()
