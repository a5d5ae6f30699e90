"""Ardour sessions (issue 18): the stems as a session folder Ardour 8 opens, checked by
parsing the .ardour XML back and checking what Ardour's loader needs (no Ardour here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.errors import (
    AudioError,
    Cancelled,
    OutputExistsError,
    StemwrightError,
)
from stemwright.models.remix import ardour
from stemwright.models.remix.ardour import (
    SUPERCLOCKS_PER_SECOND,
    ardour_azimuth,
    ardour_color,
    ardour_gain,
    export_ardour_session,
    session_folder,
)
from stemwright.models.remix.mixer import MixerState
from stemwright.models.stems import get_stem

SR = 44100
N = SR // 2 + 7  # 0.5 s, an odd length


@pytest.fixture
def stems(rng) -> dict[str, np.ndarray]:
    out = {s: (0.05 * rng.standard_normal((2, N))).astype(np.float32)
           for s in ("vocals", "drums", "other")}
    out["bass"] = (0.05 * rng.standard_normal((1, N))).astype(np.float32)  # mono
    return out


def _mixer(stems) -> MixerState:
    state = MixerState.for_stems(stems)
    state.channels["vocals"].gain_db = -6.0
    state.channels["vocals"].pan = -0.5
    state.channels["drums"].mute = True
    state.channels["bass"].solo = True
    state.master_db = -3.0
    return state


def _tree(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def _sc(frames: int, rate: int) -> str:
    return f"a{frames * SUPERCLOCKS_PER_SECOND // rate}"


def check_session(session_file: Path) -> ET.Element:
    """What Ardour's loader needs (libs/ardour/session_state.cc Session::set_state): the
    sections it refuses to load without, sources that exist in interchange/*/audiofiles
    with the channel they name, regions whose sources exist and match their channel count
    and the file's length, playlists for every track, IDs unique and below id-counter."""
    root = _tree(session_file)
    assert root.tag == "Session" and root.get("version") == "7003"
    for section in ("TempoMap", "Sources", "Locations", "Regions", "Playlists", "Routes",
                    "RouteGroups", "Config"):
        assert root.find(section) is not None, section
    rate = int(root.get("sample-rate"))
    ids = [e.get("id") for e in root.iter() if e.get("id") is not None]
    assert len(ids) == len(set(ids)), "IDs must be unique"
    assert all(i.isdigit() for i in ids) and max(map(int, ids)) < int(root.get("id-counter"))
    interchange = session_file.parent / "interchange"
    (subdir,) = list(interchange.iterdir())  # Ardour refuses more than one (sources_root)
    audio = subdir / "audiofiles"
    sources = {}
    for src in root.find("Sources"):
        info = sf.info(audio / src.get("name"))
        assert info.samplerate == rate
        assert int(src.get("channel")) < info.channels
        sources[src.get("id")] = (src.get("name"), int(src.get("channel")), info)
    regions = [*root.find("Regions"), *root.iter("Region")]
    for region in regions:
        n = int(region.get("channels"))
        refs = [region.get(f"source-{i}") for i in range(n)]
        assert refs == [region.get(f"master-source-{i}") for i in range(n)]
        assert all(r in sources for r in refs)
        names = {sources[r][0] for r in refs}
        assert len(names) == 1 and [sources[r][1] for r in refs] == list(range(n))
        info = sources[refs[0]][2]
        assert info.channels == n
        assert region.get("start") == "a0"
        assert region.get("length") == f"{_sc(info.frames, rate)}@a0"  # at time zero
    playlists = {p.get("id"): p for p in root.find("Playlists")}
    for route in root.find("Routes"):
        if route.get("audio-playlist") is not None:
            playlist = playlists[route.get("audio-playlist")]
            assert playlist.get("orig-track-id") == route.get("id")
            (region,) = playlist.findall("Region")
            n_in = len(route.find("IO[@direction='Input']").findall("Port"))
            assert n_in == int(region.get("channels"))
    return root


def _route(root: ET.Element, name: str) -> ET.Element:
    return root.find(f"Routes/Route[@name='{name}']")


def _value(el: ET.Element, path: str) -> float:
    return float(el.find(path).get("value"))


def test_session_written_parsed_back_and_loadable(tmp_path, stems) -> None:
    start = time.monotonic()
    paths = export_ardour_session(stems, SR, tmp_path, 'My "Song" & Co', bpm=97.5,
                                  mixer=_mixer(stems), format="wav", bit_depth=32,
                                  artist="Band")
    assert time.monotonic() - start < 10
    folder = session_folder(tmp_path, 'My "Song" & Co')
    assert folder.name == "My _Song_ & Co (Ardour)"
    assert paths[0] == folder / "My _Song_ & Co (Ardour).ardour"  # opens by folder too
    assert os.listdir(tmp_path) == [folder.name]  # no temporaries left
    root = check_session(paths[0])
    assert root.get("name") == folder.name and root.get("sample-rate") == str(SR)
    assert root.findtext("Metadata/title") == 'My "Song" & Co'
    assert root.findtext("Metadata/artist") == "Band"
    # one track per stem, named and coloured like it, files bit exact at time zero
    routes = [r.get("name") for r in root.find("Routes")]
    assert routes == ["Master", "Vocals", "Drums", "Other", "Bass"]
    assert _route(root, "Master").find("PresentationInfo").get("flags").startswith(
        "MasterOut")
    assert _route(root, "Vocals").find("PresentationInfo").get("color") == str(
        ardour_color(get_stem("vocals").color))
    for stem_id, path in zip(("vocals", "drums", "other", "bass"), paths[1:], strict=True):
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        assert sr == SR
        np.testing.assert_array_equal(data.T, stems[stem_id])
    assert len(_route(root, "Bass").find("IO[@direction='Input']")) == 1  # mono track
    # the mixer: fader as a gain coefficient, pan azimuth 0..1, mute, solo, master
    vocals = _route(root, "Vocals")
    assert _value(vocals, "Processor[@type='amp']/Controllable[@name='gaincontrol']") == \
        pytest.approx(10 ** (-6 / 20))
    assert _value(vocals, "Pannable/Controllable[@name='pan-azimuth']") == 0.25
    drums = _route(root, "Drums")
    assert _value(drums, "Controllable[@name='mute']") == 1.0
    assert drums.find("MuteMaster").get("muted") == "1"
    assert _value(vocals, "Controllable[@name='mute']") == 0.0
    bass = _route(root, "Bass")
    assert bass.find("Controllable[@name='solo']").get("self-solo") == "1"
    assert _value(_route(root, "Master"),
                  "Processor[@type='amp']/Controllable[@name='gaincontrol']") == \
        pytest.approx(10 ** (-3 / 20))
    # the tempo and the session range
    tempo = root.find("TempoMap/Tempos/Tempo")
    assert float(tempo.get("npm")) == 97.5 and tempo.get("sclock") == "0"
    assert root.find("TempoMap").get("superclocks-per-second") == str(SUPERCLOCKS_PER_SECOND)
    assert root.find("TempoMap/Meters/Meter").get("divisions-per-bar") == "4"
    session_range = root.find("Locations/Location[@flags='IsSessionRange']")
    assert session_range.get("end") == _sc(N, SR)


def test_flat_mixer_mono_resampled_flac(tmp_path, stems) -> None:
    paths = export_ardour_session({"bass": stems["bass"]}, SR, tmp_path, "Song",
                                  format="flac", bit_depth=16, samplerate_out=48000)
    root = check_session(paths[0])
    assert root.get("sample-rate") == "48000"
    assert sf.info(paths[1]).samplerate == 48000 and paths[1].suffix == ".flac"
    bass = _route(root, "Bass")
    assert _value(bass, "Processor[@type='amp']/Controllable[@name='gaincontrol']") == 1.0
    assert _value(bass, "Pannable/Controllable[@name='pan-azimuth']") == 0.5
    assert float(root.find("TempoMap/Tempos/Tempo").get("npm")) == 120.0  # unknown tempo


def test_conversions() -> None:
    assert ardour_gain(0.0) == 1.0
    assert ardour_gain(12.0) == 2.0  # Ardour's fader stops at +6 dB
    assert ardour_gain(-200.0) == 0.0 and ardour_gain(float("-inf")) == 0.0
    assert ardour_azimuth(-1.0) == 0.0 and ardour_azimuth(1.0) == 1.0
    assert ardour_azimuth(0.0) == 0.5 and ardour_azimuth(float("nan")) == 0.5
    assert ardour_azimuth(5.0) == 1.0
    assert ardour_color("#e4572e") == 0xE4572EFF
    with pytest.raises(StemwrightError):
        ardour_color("red")


def test_refuses_to_overwrite_unless_asked(tmp_path, stems) -> None:
    paths = export_ardour_session(stems, SR, tmp_path, "Song", bpm=100)
    before = paths[0].read_bytes()
    with pytest.raises(OutputExistsError, match=r"Song \(Ardour\) already exists"):
        export_ardour_session(stems, SR, tmp_path, "Song", bpm=140)
    assert paths[0].read_bytes() == before
    export_ardour_session(stems, SR, tmp_path, "Song", bpm=140, overwrite=True)
    assert float(_tree(paths[0]).find("TempoMap/Tempos/Tempo").get("npm")) == 140.0
    assert sorted(os.listdir(tmp_path)) == ["Song (Ardour)"]


def test_refusals_before_any_work(tmp_path, stems) -> None:
    with pytest.raises(StemwrightError, match="WAV or FLAC"):
        export_ardour_session(stems, SR, tmp_path, "Song", format="mp3")
    with pytest.raises(StemwrightError, match="out of range"):
        export_ardour_session(stems, SR, tmp_path, "Song", bpm=5000)
    with pytest.raises(StemwrightError, match="not produced"):
        export_ardour_session(stems, SR, tmp_path, "Song", which=["wind"])
    (tmp_path / "Song (Ardour)").write_text("a file in the way")
    with pytest.raises(StemwrightError, match="is a file"):
        export_ardour_session(stems, SR, tmp_path, "Song", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["Song (Ardour)"]


def test_cancel_or_failure_midway_leaves_nothing(tmp_path, stems, monkeypatch) -> None:
    calls = iter([False, False, True])
    with pytest.raises(Cancelled):
        export_ardour_session(stems, SR, tmp_path, "Song", cancel=lambda: next(calls, True))
    assert os.listdir(tmp_path) == []

    def broken(text):
        def write(stage):
            raise OSError(28, "No space left on device")
        return write
    monkeypatch.setattr(ardour, "_text_writer", broken)
    with pytest.raises(AudioError, match=r"Song \(Ardour\)\.ardour: could not be written"):
        export_ardour_session(stems, SR, tmp_path, "Song")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    paths = export_ardour_session(stems, SR, tmp_path, "Song", bpm=100)
    before = paths[0].read_bytes()
    monkeypatch.setattr(ardour, "_text_writer", broken)
    with pytest.raises(AudioError):  # replacing fails: the old session stays whole
        export_ardour_session(stems, SR, tmp_path, "Song", bpm=90, overwrite=True)
    assert paths[0].read_bytes() == before and os.listdir(tmp_path) == ["Song (Ardour)"]


def test_errors_name_the_session_not_the_temporary(tmp_path, stems, monkeypatch) -> None:
    from stemwright.models.remix import export

    def full(self, path, data, rate, tags):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(export._Encoding, "save", full)
    with pytest.raises(AudioError) as info:
        export_ardour_session(stems, SR, tmp_path, "Song")
    text = str(info.value)
    assert "Song (Ardour)/interchange/Song (Ardour)/audiofiles/Song - Vocals.wav" in text
    assert ".stemwright-tmp" not in text and "\n" not in text
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs permissions")
def test_read_only_folder_refused_in_one_line(tmp_path, stems) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StemwrightError, match=r"Song \(Ardour\) cannot be created"):
            export_ardour_session(stems, SR, folder, "Song")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_xml_holds_any_title_and_refuses_no_tracks() -> None:
    track = ardour.SessionTrack("Vocals", "#e4572e", "a & b.wav", 2, 100)
    text = ardour.ardour_session_xml("S <1>", [track], 48000, title="T\x01\ud800",
                                     artist='A "&" <B>')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.get("name") == "S <1>" and root.findtext("Metadata/title") == "T__"
    assert root.findtext("Metadata/artist") == 'A "&" <B>'
    assert root.find("Sources/Source").get("name") == "a & b.wav"
    with pytest.raises(StemwrightError, match="at least one stem"):
        ardour.ardour_session_xml("S", [], 48000)


def test_stale_half_built_session_of_a_dead_process_is_removed(tmp_path, stems) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(proc.stdout)
    stale = tmp_path / f".stemwright-tmp-{dead}-0123456789ab.ardoursession"
    (stale / "interchange").mkdir(parents=True)
    (stale / "interchange" / "x.wav").write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    export_ardour_session(stems, SR, tmp_path, "Song")
    assert os.listdir(tmp_path) == ["Song (Ardour)"]


# -- the export dialog -------------------------------------------------------------------

def test_dialog_writes_an_ardour_session(qtbot, tmp_path, stems, monkeypatch) -> None:
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings

    from stemwright.desktop.dialogs import export as export_dialog

    errors: list[BaseException] = []
    monkeypatch.setattr(export_dialog, "show_exception",
                        lambda parent, exc, title="": errors.append(exc))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("export/folder", str(tmp_path / "out"))
    settings.setValue("export/subfolder", False)
    d = export_dialog.ExportDialog(None, stems, SR, "Song", _mixer(stems), settings,
                                   bpm=128.0)
    qtbot.addWidget(d)
    d.set_mode("daw")
    assert d.daw_combo.currentData() == "reaper"  # REAPER stays the default
    assert "Song.RPP" in d.preview.text()
    d.daw_combo.setCurrentIndex(d.daw_combo.findData("ardour"))
    assert "Song (Ardour)  (Ardour session folder)" in d.preview.text()
    d.format_combo.setCurrentIndex(d.format_combo.findData("mp3"))
    assert "WAV or FLAC" in d.preview.text() and not d.export_button.isEnabled()
    d.format_combo.setCurrentIndex(d.format_combo.findData("wav"))
    assert d.export_button.isEnabled()
    with qtbot.waitSignal(d.exported, timeout=10000):
        assert d.start_export()
    qtbot.waitUntil(lambda: d.task is None, timeout=5000)
    assert errors == []
    session = tmp_path / "out" / "Song (Ardour)"
    assert d.written[0] == session / "Song (Ardour).ardour"
    assert d.exported_folder() == session
    root = check_session(d.written[0])
    assert float(root.find("TempoMap/Tempos/Tempo").get("npm")) == 128.0
    assert _value(_route(root, "Drums"), "Controllable[@name='mute']") == 1.0
    asked = []
    d.confirm_overwrite = lambda existing: asked.append(existing) or False
    assert d.start_export() is False and asked == [[session]]
