"""`.stem.mp4` files (NI Stems, as MUSDB18 ships) read as multitrack songs: listed by
`stemwright multitrack`, scored by `evaluate`, read as training data and opened in the
app; a damaged, mono or wrongly laid out file is one reported problem."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from stemwright.models.cli.commands import main
from stemwright.models.multitrack import stem_files
from stemwright.models.multitrack.folders import (
    MultitrackError,
    load_song,
    read_mapping,
    scan_folder,
    write_mapping,
)
from stemwright.models.remix.nistems import write_ni_stems
from stemwright.models.synthetic.test_songs import synth_song
from stemwright.models.training import dataset as ds

SR = 44100
SECONDS = 1.0


def _stems(seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    _, parts = synth_song(SECONDS, SR, seed=seed, stems=("vocals", "drums", "bass", "other"))
    parts = {k: (0.5 * v).astype(np.float32) for k, v in parts.items()}
    return np.sum(list(parts.values()), axis=0), parts


def _patch(path: Path, old: bytes, new: bytes) -> None:
    """Replace bytes of the same length in place (the box sizes stay right)."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert data.count(old) == 1, old
    path.write_bytes(data.replace(old, new))


def _plain_mp4(path: Path, streams: int, layout: str) -> Path:
    """An MP4 of `streams` short AAC tracks (not an NI Stems file)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        sts = [out.add_stream("aac", rate=SR, layout=layout) for _ in range(streams)]
        channels = 1 if layout == "mono" else 2
        data = np.zeros((channels, 4096), np.float32)
        for st in sts:
            frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = SR, 0
            out.mux(st.encode(frame))
            out.mux(st.encode(None))
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Alpha: MUSDB-like metadata names (lower case) in train/; Beta: its fourth stem named
    "Guitar"; Gamma: no NI metadata at all; Broken: a damaged file."""
    root = tmp_path_factory.mktemp("stems")
    (root / "train").mkdir()
    mix, parts = _stems(1)
    alpha = write_ni_stems(root / "train" / "Alpha.stem.mp4", mix, parts, SR)
    for name in (b"Drums", b"Bass", b"Other", b"Vocals"):
        _patch(alpha, b'"name":"' + name + b'"', b'"name":"' + name.lower() + b'"')
    mix, parts = _stems(2)
    beta = write_ni_stems(root / "Beta.stem.mp4", mix, parts, SR)
    _patch(beta, b'"name":"Vocals"', b'"name":"Guitar"')
    gamma = write_ni_stems(root / "Gamma.stem.mp4", mix, parts, SR)
    _patch(gamma, b'stem{"version"', b'free{"version"')  # the manifest box is gone
    broken = root / "Broken.stem.mp4"
    broken.write_bytes(beta.read_bytes()[:3000])
    return root


def test_multitrack_lists_stem_files_with_tracks_and_mapping(root, capsys):
    assert main(["multitrack", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    songs = {s["song"]: s for s in data["songs"]}
    assert sorted(songs) == ["Beta.stem.mp4", "Gamma.stem.mp4", "train/Alpha.stem.mp4"]
    alpha = songs["train/Alpha.stem.mp4"]
    assert alpha["layout"] == "nistems" and alpha["mixture"] == "Alpha.stem.mp4"
    assert [(t["file"], t["stem"], t["by"]) for t in alpha["tracks"]] == [
        ("1 drums", "drums", "metadata"), ("2 bass", "bass", "metadata"),
        ("3 other", "other", "metadata"), ("4 vocals", "vocals", "metadata")]
    assert alpha["tracks"][0]["samplerate"] == SR and alpha["tracks"][0]["channels"] == 2
    assert abs(alpha["duration"] - SECONDS) < 0.05 and alpha["problems"] == []
    assert songs["Beta.stem.mp4"]["tracks"][3]["stem"] == "electric_guitar"
    assert songs["Beta.stem.mp4"]["stems"] == ["drums", "bass", "electric_guitar", "other"]
    gamma = songs["Gamma.stem.mp4"]
    assert [t["stem"] for t in gamma["tracks"]] == ["drums", "bass", "other", "vocals"]
    assert len(gamma["problems"]) == 1 and "MUSDB18's order" in gamma["problems"][0]
    broken = [p for p in data["problems"] if "Broken" in p]
    assert len(broken) == 1 and "\n" not in broken[0] and "skipped" in broken[0]
    # the text listing, and one file given where a folder can be
    assert main(["multitrack", str(root / "Beta.stem.mp4")]) == 0
    out = capsys.readouterr().out
    assert "1 song" in out and "4 Guitar" in out and "electric_guitar" in out


def test_a_song_is_decoded_once_and_mapping_overrides_apply(root, monkeypatch, tmp_path):
    calls = []
    real = stem_files.read_ni_stems
    monkeypatch.setattr(stem_files, "read_ni_stems",
                        lambda p: calls.append(p) or real(p))
    scan = scan_folder(root / "train" / "Alpha.stem.mp4")
    loaded = load_song(scan.songs[0])
    assert len(calls) == 1
    assert [t.key for t, _ in loaded.tracks] == ["1 drums", "2 bass", "3 other", "4 vocals"]
    assert loaded.mixture.shape == (2, loaded.length) and loaded.samplerate == SR
    assert abs(loaded.length - SR * SECONDS) < 2048
    # the edited mapping file is read back (keys are the song file and the stem slots)
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(root / "Beta.stem.mp4", folder)
    scan = scan_folder(folder)
    written = write_mapping(scan)
    mapping = read_mapping(written)
    assert mapping == {"Beta.stem.mp4": {"Beta.stem.mp4": "mixture", "1 Drums": "drums",
                                         "2 Bass": "bass", "3 Other": "other",
                                         "4 Guitar": "electric_guitar"}}
    written.write_text(written.read_text().replace("4 Guitar: electric_guitar",
                                                   "4 Guitar: ignore"))
    song = scan_folder(folder).songs[0]
    assert song.stems_present() == ("drums", "bass", "other")
    assert [t.key for t, _ in load_song(song).tracks] == ["1 Drums", "2 Bass", "3 Other"]


def test_bad_files_are_one_problem_each_and_never_stop_the_others(tmp_path):
    _plain_mp4(tmp_path / "Three.stem.mp4", 3, "stereo")
    _plain_mp4(tmp_path / "Mono.stem.mp4", 5, "mono")
    (tmp_path / "Junk.stem.mp4").write_bytes(b"\0" * 64)
    mix, parts = _stems(3)
    write_ni_stems(tmp_path / "Good.stem.mp4", mix, parts, SR)
    scan = scan_folder(tmp_path)
    assert [s.key for s in scan.songs] == ["Good.stem.mp4"]
    problems = sorted(scan.problems)
    assert len(problems) == 3 and all("\n" not in p for p in problems)
    assert "Junk.stem.mp4: skipped" in problems[0]
    assert "Mono.stem.mp4: skipped" in problems[1] and "mono" in problems[1]
    assert "Three.stem.mp4: skipped" in problems[2] and "3 audio tracks" in problems[2]
    with pytest.raises(MultitrackError, match="Mono.stem.mp4: .*mono"):
        scan_folder(tmp_path / "Mono.stem.mp4")


def test_evaluate_scores_a_stem_file(root, tmp_path, capsys):
    folder = tmp_path / "eval"
    folder.mkdir()
    shutil.copy(root / "train" / "Alpha.stem.mp4", folder)
    shutil.copy(root / "Broken.stem.mp4", folder)
    start = time.monotonic()
    assert main(["evaluate", str(folder), "-m", "classic", "--device", "cpu",
                 "-o", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "1 song" in out and "classic" in out and "vocals" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert any("Broken.stem.mp4" in p for p in report["problems"])
    assert time.monotonic() - start < 30


def test_training_data_reads_stem_files(root, tmp_path):
    songs, problems = ds.prepare_songs([root], 8000, tmp_path / "cache")
    by_key = {s.key.split("/", 1)[1]: s for s in songs}
    assert sorted(by_key) == ["Beta.stem.mp4", "Gamma.stem.mp4", "train/Alpha.stem.mp4"]
    assert by_key["Beta.stem.mp4"].stems == ("drums", "bass", "electric_guitar", "other")
    assert by_key["train/Alpha.stem.mp4"].stems == ("vocals", "drums", "bass", "other")
    assert abs(by_key["Gamma.stem.mp4"].length - 8000 * SECONDS) < 400
    assert len([p for p in problems if "Broken.stem.mp4" in p]) == 1


def test_the_app_opens_a_stem_file(root, request, tmp_path):
    pytest.importorskip("PySide6")
    pytest.importorskip("pytestqt")
    qtbot = request.getfixturevalue("qtbot")
    request.getfixturevalue("desktop_isolation")
    from stemwright.desktop.dialogs.multitrack import MultitrackSong, describe_song, found_by
    from stemwright.desktop.main_window import MainWindow
    from stemwright.desktop.settings import Settings

    window = MainWindow(Settings(tmp_path / "settings.ini"))
    window.confirm = lambda *_args: True
    qtbot.addWidget(window)
    window.songs.open_file(root / "Beta.stem.mp4")  # File > Open or a drop: multitrack
    dialog = window.multitrack.dialog
    if dialog.scan is None:
        with qtbot.waitSignal(dialog.scanned, timeout=30_000):
            pass
    song = dialog.current_song()
    assert song is not None and song.name == "Beta" and song.layout == "nistems"
    assert "NI Stems" in describe_song(song)
    assert found_by(song.tracks[3], song.layout)[0] == "NI Stems name: Guitar"
    keys = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())]
    assert keys == ["Beta.stem.mp4", "1 Drums", "2 Bass", "3 Other", "4 Guitar"]
    with qtbot.waitSignal(window.songLoaded, timeout=30_000):
        dialog.open_song()
    assert isinstance(window.song, MultitrackSong)
    assert set(window.song.mixdown.stems) == {"drums", "bass", "electric_guitar", "other"}
