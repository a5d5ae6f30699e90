"""Multitrack folders of every layout, written here as tiny files, and the name rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from stemwright.models.multitrack.folders import (
    IGNORE,
    MAPPING_FILE,
    MultitrackError,
    load_song,
    normalise_name,
    read_mapping,
    scan_folder,
    stem_for_midi_program,
    stem_for_name,
    write_mapping,
)

SR = 8000


def tone(freq: float, seconds: float = 0.5, sr: int = SR, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * freq * t)
    return np.stack([x * (0.8 + 0.2 * c) for c in range(channels)]).T.astype(np.float32)


def write(path: Path, data: np.ndarray | None = None, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(220 + 10 * len(path.name)) if data is None else data, sr)
    return path


@pytest.mark.parametrize(("name", "stem"), [
    # the examples
    ("Lead Vocal", "vocals"), ("Backing Vocals", "vocals"), ("Kick", "drums"),
    ("Snare", "drums"), ("OH", "drums"), ("Bass DI", "bass"),
    ("Electric Guitar Rhythm", "electric_guitar"), ("Dist Gtr", "electric_guitar"),
    ("Alto Sax", "wind"), ("Trumpet", "wind"), ("Flute", "wind"), ("Piano", "other"),
    ("Strings", "other"), ("Acoustic Guitar", "other"),
    # studio shorthand, punctuation, numbering, camelCase
    ("01_LeadVox-Dbl (Take2).wav", "vocals"), ("BGVs", "vocals"), ("OH L", "drums"),
    ("Kick In", "drums"), ("HiHat", "drums"), ("Synth Bass", "bass"), ("Bass Drum", "drums"),
    ("Bass Clarinet", "wind"), ("Bassoon", "wind"), ("Gtr Chorus", "electric_guitar"),
    ("Lead Synth", "other"), ("AC GTR", "other"), ("Click", IGNORE),
    # other languages, accents
    ("E-Gitarre", "electric_guitar"), ("Akustikgitarre", "other"), ("Schlagzeug", "drums"),
    ("Gesang", "vocals"), ("Trompete", "wind"), ("Bläser", "wind"),
    ("Guitare électrique", "electric_guitar"), ("Guitare acoustique", "other"),
    ("Batería", "drums"), ("Voz principal", "vocals"), ("Basso", "bass"), ("Flûte", "wind"),
    # MedleyDB instrument names
    ("male singer", "vocals"), ("clean electric guitar", "electric_guitar"),
    ("electric bass", "bass"), ("drum set", "drums"), ("fx/processed sound", "other"),
    ("electric piano", "other"), ("tenor saxophone", "wind"),
])
def test_name_rules(name: str, stem: str) -> None:
    assert stem_for_name(name) == stem


def test_unknown_names_and_normalising() -> None:
    assert stem_for_name("Unknown thing") is None
    assert stem_for_name("") is None
    assert normalise_name("02 - LeadVOX_final.WAV") == "lead vox final"


def test_midi_programs() -> None:
    assert stem_for_midi_program(30) == "electric_guitar"
    assert stem_for_midi_program(25) == "other"  # steel-string acoustic
    assert stem_for_midi_program(33) == "bass"
    assert stem_for_midi_program(65) == "wind"
    assert stem_for_midi_program(0) == "other"
    assert stem_for_midi_program(0, is_drum=True) == "drums"


def test_musdb_layout(tmp_path: Path) -> None:
    song = tmp_path / "train" / "Song A"
    write(song / "mixture.wav")
    for stem in ("vocals", "drums", "bass"):
        write(song / f"{stem}.flac")
    write(song / "other.wav")
    write(song / "notes.wav")
    scan = scan_folder(tmp_path)
    (found,) = scan.songs
    assert found.layout == "musdb" and found.key == "train/Song A"
    assert found.mixture.name == "mixture.wav"
    assert found.stems_present() == ("vocals", "drums", "bass", "other")
    assert all(t.source == "metadata" for t in found.tracks)
    assert any("notes.wav" in p for p in found.problems)
    assert found.duration == pytest.approx(0.5)


def test_tracks_layout_with_studio_names(tmp_path: Path) -> None:
    song = tmp_path / "My Song"
    names = ["Lead Vocal", "Backing Vocals", "Kick", "Snare", "OH", "Bass DI",
             "Electric Guitar Rhythm", "Dist Gtr", "Alto Sax", "Trumpet", "Flute", "Piano",
             "Strings", "Acoustic Guitar", "Click", "Zither thing"]
    for n in names:
        write(song / f"{n}.wav")
    write(song / "Perc" / "take 3.wav")  # no rule: the sub-folder's name decides
    write(song / "Full Mix.wav")
    (found,) = scan_folder(tmp_path).songs
    assert found.layout == "tracks" and found.mixture.name == "Full Mix.wav"
    stems = {t.key: (t.stem, t.source) for t in found.tracks}
    assert stems["Dist Gtr.wav"] == ("electric_guitar", "name")
    assert stems["Alto Sax.wav"] == ("wind", "name")
    assert stems["Acoustic Guitar.wav"] == ("other", "name")
    assert stems["Perc/take 3.wav"] == ("drums", "name")
    assert stems["Zither thing.wav"] == ("other", "default")
    assert stems["Click.wav"] == (IGNORE, "name")
    assert found.stems_present() == ("vocals", "drums", "bass", "electric_guitar", "wind",
                                     "other")
    loaded = load_song(found)
    assert len(loaded.tracks) == len(names)  # the click is left out, the sub-folder counted
    assert "Click.wav" not in {t.key for t, _ in loaded.tracks}


def test_slakh_layout(tmp_path: Path) -> None:
    song = tmp_path / "Track00001"
    meta = {"UUID": "x", "audio_dir": "stems", "stems": {
        "S00": {"program_num": 30, "is_drum": False, "inst_class": "Guitar",
                "midi_program_name": "Distortion Guitar", "audio_rendered": True},
        "S01": {"program_num": 0, "is_drum": True, "inst_class": "Drums"},
        "S02": {"program_num": 33, "is_drum": False, "inst_class": "Bass"},
        "S03": {"program_num": 65, "is_drum": False, "inst_class": "Reed"},
        "S04": {"program_num": 0, "is_drum": False, "inst_class": "Piano"},
        "S05": {"program_num": 48, "is_drum": False, "audio_rendered": False},
    }}
    song.mkdir()
    (song / "metadata.yaml").write_text(yaml.safe_dump(meta))
    for key in ("S00", "S01", "S02", "S03", "S04"):
        write(song / "stems" / f"{key}.flac")
    write(song / "mix.flac")
    (found,) = scan_folder(tmp_path).songs
    assert found.layout == "slakh" and found.mixture.name == "mix.flac"
    assert [(t.key, t.stem) for t in found.tracks] == [
        ("stems/S00.flac", "electric_guitar"), ("stems/S01.flac", "drums"),
        ("stems/S02.flac", "bass"), ("stems/S03.flac", "wind"), ("stems/S04.flac", "other")]
    assert found.tracks[0].instrument == "Distortion Guitar"
    assert not found.problems  # S05 was not rendered: no file expected


def test_medleydb_layout(tmp_path: Path) -> None:
    song = tmp_path / "Artist_Song"
    meta = {"mix_filename": "Artist_Song_MIX.wav", "stem_dir": "Artist_Song_STEMS",
            "stems": {
                "S01": {"filename": "Artist_Song_STEM_01.wav", "instrument": "male singer"},
                "S02": {"filename": "Artist_Song_STEM_02.wav", "instrument": "drum set"},
                "S03": {"filename": "Artist_Song_STEM_03.wav", "instrument": "electric bass"},
                "S04": {"filename": "Artist_Song_STEM_04.wav",
                        "instrument": "distorted electric guitar"},
                "S05": {"filename": "Artist_Song_STEM_05.wav", "instrument": "trumpet"},
                "S06": {"filename": "Artist_Song_STEM_06.wav", "instrument": "gu zheng"},
                "S07": {"filename": "Artist_Song_STEM_07.wav", "instrument": "piano"},
            }}
    song.mkdir()
    (song / "Artist_Song_METADATA.yaml").write_text(yaml.safe_dump(meta))
    for i in range(1, 7):
        write(song / "Artist_Song_STEMS" / f"Artist_Song_STEM_0{i}.wav")
    write(song / "Artist_Song_MIX.wav")
    write(song / "Artist_Song_RAW" / "Artist_Song_RAW_01_01.wav")  # not a song of its own
    scan = scan_folder(tmp_path)
    (found,) = scan.songs
    assert found.layout == "medleydb" and found.mixture.name == "Artist_Song_MIX.wav"
    assert [t.stem for t in found.tracks] == ["vocals", "drums", "bass", "electric_guitar",
                                             "wind", "other"]
    assert found.tracks[0].source == "metadata" and found.tracks[0].instrument == "male singer"
    assert found.tracks[5].source == "default"  # "gu zheng" matches no rule
    assert any("STEM_07" in p and "not found" in p for p in found.problems)


def test_mismatches_are_fixed_with_warnings(tmp_path: Path) -> None:
    song = tmp_path / "Odd"
    write(song / "Vocals.wav", tone(300, 0.5, 8000, 2), 8000)
    write(song / "Bass.wav", tone(80, 0.3, 16000, 1), 16000)  # other rate, mono, shorter
    write(song / "Guitar.wav", tone(500, 0.5, 8000, 6), 8000)  # six channels
    (found,) = scan_folder(tmp_path).songs
    assert any("sample rates differ" in p for p in found.problems)
    assert any("lengths differ" in p for p in found.problems)
    loaded = load_song(found)
    assert loaded.samplerate == 8000
    assert {a.shape for _, a in loaded.tracks} == {(2, 4000)}
    text = " ".join(loaded.warnings)
    assert "resampled from 16000" in text and "mono" in text and "downmixed" in text
    assert "padded with silence" in text


def test_unreadable_track_is_skipped(tmp_path: Path) -> None:
    song = tmp_path / "Broken"
    write(song / "Vocals.wav")
    write(song / "Drums.wav")
    (song / "Bass.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    (found,) = scan_folder(tmp_path).songs
    bad = next(t for t in found.tracks if t.key == "Bass.wav")
    assert bad.problem and not bad.usable
    assert found.stems_present() == ("vocals", "drums")
    loaded = load_song(found)
    assert [t.key for t, _ in loaded.tracks] == ["Drums.wav", "Vocals.wav"]
    assert any(w.startswith("Bass.wav: skipped") for w in loaded.warnings)


def test_empty_and_songless_folders(tmp_path: Path) -> None:
    with pytest.raises(MultitrackError, match="empty"):
        scan_folder(tmp_path)
    (tmp_path / "readme.txt").write_text("hello")
    write(tmp_path / "sub" / "only one.wav")
    with pytest.raises(MultitrackError, match="no songs found"):
        scan_folder(tmp_path)
    with pytest.raises(MultitrackError, match="no such folder"):
        scan_folder(tmp_path / "missing")


def test_folder_of_finished_songs_is_not_a_multitrack(tmp_path: Path) -> None:
    write(tmp_path / "mixes" / "Yesterday.wav")
    write(tmp_path / "mixes" / "Something Else.wav")
    with pytest.raises(MultitrackError, match="no songs found"):
        scan_folder(tmp_path)
    # unless the mapping file says what the files are
    (tmp_path / MAPPING_FILE).write_text(
        "songs:\n  mixes:\n    Yesterday.wav: vocals\n    Something Else.wav: drums\n")
    (song,) = scan_folder(tmp_path).songs
    assert song.stems_present() == ("vocals", "drums")


def test_mapping_file_round_trip(tmp_path: Path) -> None:
    song = tmp_path / "Song"
    for n in ("Lead Vox", "Horn Thing", "Keys", "Mix"):
        write(song / f"{n}.wav")
    scan = scan_folder(tmp_path)
    path = write_mapping(scan)
    assert path.name == MAPPING_FILE
    data = read_mapping(path)
    assert data == {"Song": {"Mix.wav": "mixture", "Horn Thing.wav": "wind",
                             "Keys.wav": "other", "Lead Vox.wav": "vocals"}}
    text = path.read_text()
    assert text.startswith("# Stemwright track mapping")
    path.write_text(text.replace("Horn Thing.wav: wind", "Horn Thing.wav: electric guitar")
                    .replace("Keys.wav: other", "Keys.wav: ignore"))
    (found,) = scan_folder(tmp_path).songs
    horn = next(t for t in found.tracks if t.key == "Horn Thing.wav")
    assert (horn.stem, horn.source) == ("electric_guitar", "override")
    assert next(t for t in found.tracks if t.key == "Keys.wav").stem == IGNORE
    vox = next(t for t in found.tracks if t.key == "Lead Vox.wav")
    assert vox.source == "name"  # unchanged entries keep where they came from
    assert found.stems_present() == ("vocals", "electric_guitar")
    # the mixture can be turned into a track
    path.write_text(path.read_text().replace("Mix.wav: mixture", "Mix.wav: other"))
    (found,) = scan_folder(tmp_path).songs
    assert found.mixture is None and "other" in found.stems_present()
    path.write_text(path.read_text().replace("Mix.wav: other", "Mix.wav: banjo"))
    with pytest.raises(MultitrackError, match="unknown stem 'banjo'"):
        scan_folder(tmp_path)


def test_json_mapping_file(tmp_path: Path) -> None:
    song = tmp_path / "Song"
    write(song / "Lead Vox.wav")
    write(song / "Thing.wav")
    (tmp_path / "stemwright-mapping.json").write_text(
        '{"songs": {"Song": {"Thing.wav": "drums", "Nope.wav": "bass"}}}')
    scan = scan_folder(tmp_path)
    (found,) = scan.songs
    assert next(t for t in found.tracks if t.key == "Thing.wav").stem == "drums"
    assert any("Nope.wav" in p for p in found.problems)
    assert scan.mapping_file.name == "stemwright-mapping.json"
