"""`stemwright separate --format`: lossy files with bitrates and tags, and NI Stems (one
.stem.mp4 per song), with their options checked before any work (issue 18)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.audio.io import load_audio
from stemwright.models.cli.commands import main
from stemwright.models.remix.nistems import read_ni_stems
from stemwright.models.synthetic.test_songs import synth_song

SR = 44100


@pytest.fixture
def song(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    mix, _ = synth_song(1.0, SR, seed=3)
    path = tmp_path / "Tune.wav"
    sf.write(path, mix.T, SR, subtype="PCM_16")
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_mp3_vbr_stems_with_tags_and_the_settings_in_the_record(tmp_path, song, capsys):
    code, _, err = run(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "-m",
                       "classic", "--format", "mp3", "--vbr", "2")
    assert code == 0, err
    folder = tmp_path / "out" / "Tune"
    audio = load_audio(folder / "Tune - Vocals.mp3")
    assert audio.data.shape[1] == SR  # the input's length, exactly
    assert audio.tags["title"] == "Tune" and audio.tags["comment"] == "Vocals"
    record = json.loads((folder / ".stemwright.json").read_text())
    assert record["format"] == "mp3" and record["vbr"] == 2


def test_ni_stems_one_file_holding_the_mix_and_four_stems(tmp_path, song, capsys):
    code, out, err = run(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "-m",
                         "classic", "--format", "ni-stems", "--bitrate", "192")
    assert code == 0, err
    assert "NI Stems file" in out and "folded into other" in out
    folder = tmp_path / "out" / "Tune"
    assert sorted(p.name for p in folder.iterdir()) == [".stemwright.json",
                                                          "Tune.stem.mp4"]
    ni = read_ni_stems(folder / "Tune.stem.mp4")
    assert list(ni.stems) == ["drums", "bass", "other", "vocals"]
    mix = load_audio(song).data
    err_db = 10 * np.log10(np.sum((ni.mix - mix) ** 2) / np.sum(mix ** 2))
    assert err_db < -15  # the mix track is the song (AAC at 192 kbit/s)


@pytest.mark.parametrize("args,words", [
    (("--format", "flac", "--bitrate", "128"), "lossless"),
    (("--format", "mp3", "--bitrate", "1000"), "320"),
    (("--format", "ni-stems", "--stems", "vocals"), "--stems"),
    (("--format", "ni-stems", "--vbr", "2"), "--vbr"),
])
def test_options_a_format_does_not_take_are_refused_before_any_work(tmp_path, song, capsys,
                                                                     args, words):
    code, _, err = run(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "-m",
                       "classic", *args)
    assert code != 0 and len(err.strip().splitlines()) == 1 and words in err
    assert not (tmp_path / "out").exists()


def test_ni_stems_refused_for_a_model_without_drums_bass_and_vocals(tmp_path, song, capsys,
                                                                    monkeypatch):
    from stemwright.models.stems import StemMapping
    from stemwright.models.zoo import catalog

    entry = catalog.get_entry("classic")
    vocals_only = type(entry)(**{**entry.__dict__,
                                 "mapping": StemMapping(("vocals",))})
    monkeypatch.setattr(catalog, "get_entry", lambda name: vocals_only)
    code, _, err = run(capsys, "separate", str(song), "-o", str(tmp_path / "out"),
                       "--format", "ni-stems")
    assert code != 0 and "NI Stems needs" in err and "drums" in err
