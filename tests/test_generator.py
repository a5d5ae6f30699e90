"""`stemwright synth`: songs as multitrack folders the reader maps correctly, exact
mixtures, sane levels, determinism across processes, resume, splits, the sung voice and
the tool check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from stemwright.models.cli.commands import main
from stemwright.models.multitrack.folders import load_song, scan_folder
from stemwright.models.multitrack.mixdown import mixdown_song
from stemwright.models.remix.mixer import null_test_db
from stemwright.models.stems import STEM_IDS
from stemwright.models.synthetic import generate as gen
from stemwright.models.synthetic import render
from stemwright.models.synthetic.song import Note, Part, Song


def _tools_or_skip() -> render.Tools:
    try:
        return render.check_tools()
    except render.ToolError as exc:
        pytest.skip(f"synth tools missing (install them with packaging/install.sh): {exc}")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, dict]:
    """Two 4-second songs made through the command line (one worker)."""
    _tools_or_skip()
    out = tmp_path_factory.mktemp("synth") / "songs"
    assert main(["synth", str(out), "--songs", "2", "--seconds", "4", "--seed", "11",
                 "--workers", "1", "--split", "0.5/0.5/0"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def _md5s(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.suffix in (".flac", ".mid")}


def test_folders_read_back_with_every_track_on_its_stem(made):
    out, summary = made
    assert summary["songs"] == 2 and summary["all_six_stems"] == 2
    assert {s: v["songs"] for s, v in summary["splits"].items()} == {"train": 1, "valid": 1,
                                                                     "test": 0}
    assert summary["speed_x_realtime"] > 0 and summary["mb_per_audio_minute"] > 0
    assert {sf["name"] for sf in summary["soundfonts"]}
    scan = scan_folder(out)
    assert len(scan.songs) == 2 and not scan.problems
    for song in scan.songs:
        meta = yaml.safe_load((song.folder / gen.META_FILE).read_text())
        intended = {s["filename"]: s["stem"] for s in meta["stems"].values()}
        assert song.layout == "medleydb" and song.mixture.name == gen.MIX_FILE
        assert {t.key: t.stem for t in song.tracks} == intended
        assert all(t.source == "metadata" for t in song.tracks)
        assert song.stems_present() == STEM_IDS
        assert (song.folder / "song.mid").stat().st_size > 100
        assert meta["lyrics"] and meta["tempo"] > 0 and meta["seed"] > 0
        assert not song.problems


def test_mixture_is_the_sum_of_the_stems_and_nothing_clips(made):
    out, summary = made
    for song in scan_folder(out).songs:
        loaded = load_song(song)
        assert loaded.samplerate == 44100 and loaded.length == 4 * 44100
        assert not loaded.warnings
        md = mixdown_song(loaded)
        assert md.mixture_source == "file" and md.residual_db < -120
        assert null_test_db(md.mixture, md.stems) < -120
        assert set(md.stems) == set(STEM_IDS)
        peak = float(np.max(np.abs(md.mixture)))
        assert 10 ** (-4.5 / 20) < peak < 10 ** (-0.4 / 20)
        for stem, audio in md.stems.items():
            a_peak = float(np.max(np.abs(audio)))
            level = gen.active_rms_db(audio)
            assert a_peak < 0.95, stem
            assert -50 < level < -8, (stem, level)  # heard, not dominating
        for track, audio in loaded.tracks:
            assert np.max(np.abs(audio)) > 1e-3, track.key  # every track sounds
            assert audio.shape == (2, loaded.length)


def test_same_seed_same_files_in_parallel_workers_and_resume(made, tmp_path):
    out, summary = made
    again = tmp_path / "again"
    # other workers, another order, song 0 rendered after song 1 in one of them
    s2 = gen.generate(again, songs=2, seconds=4, seed=11, split="0.5/0.5/0", workers=2)
    assert _md5s(again) == _md5s(out)
    assert [r["key"] for r in s2["song_list"]] == [r["key"] for r in summary["song_list"]]
    # a second run finds the songs done and renders nothing
    before = {p: p.stat().st_mtime_ns for p in again.rglob("*.flac")}
    s3 = gen.generate(again, songs=2, seconds=4, seed=11, split="0.5/0.5/0", workers=1)
    assert s3["rendered_songs"] == 0 and s3["songs"] == 2
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*.flac")} == before
    # other settings into the same folder would mix two sets: refused before any work
    with pytest.raises(gen.GeneratorError, match="seed 11"):
        gen.generate(again, songs=2, seconds=4, seed=12, workers=1)
    with pytest.raises(gen.GeneratorError, match="would not make"):
        (again / "summary.json").unlink()
        gen.generate(again, songs=1, seconds=4, seed=11, split="0.5/0.5/0", workers=1)


def test_singer_hits_the_notes():
    tools = _tools_or_skip()
    singer = render.Singer(tools.espeak, tools.espeak_data)
    try:
        song = Song(seed=0, seconds=3.0, style="pop", bpm=60.0, tonic=0, mode="major",
                    swing=0.0, sections=[], parts=[])
        part = Part("Lead Vocal", "vocals", "lead vocal", -1, notes=[
            Note(0.2, 1.2, 57, 100, "day"), Note(1.6, 1.2, 64, 100, "night")])
        voice = singer.available("male")[0]
        y = singer.sing(part, song, [voice], "en-us", 3 * 44100, np.random.default_rng(0))
    finally:
        singer.close()
    assert y.shape == (3 * 44100,) and np.max(np.abs(y)) > 0.05
    for note in part.notes:  # the middle of each note, before the vibrato sets in
        a = int((note.start + 0.25) * 44100)
        seg = y[a:a + 4096].astype(np.float64)
        assert np.sqrt(np.mean(seg ** 2)) > 0.01  # the word is sung through the note
        want = 440.0 * 2 ** ((note.pitch - 69) / 12)
        ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
        lo, hi = int(44100 / (want * 1.2)), int(44100 / (want / 1.2))
        lag = lo + int(np.argmax(ac[lo:hi]))
        # parabolic refinement of the autocorrelation peak
        a0, a1, a2 = ac[lag - 1], ac[lag], ac[lag + 1]
        lag_f = lag + 0.5 * (a0 - a2) / (a0 - 2 * a1 + a2)
        cents = 1200 * np.log2((44100 / lag_f) / want)
        assert abs(cents) < 25, (note.pitch, cents)


def test_many_pitches_and_voices_in_one_song(monkeypatch):
    """More variants than espeak-ng lists at once (349 voices, most of them its own) are
    sung in several calls; every note comes back in order."""
    tools = _tools_or_skip()
    monkeypatch.setattr(render, "VARIANTS_PER_CALL", 5)
    singer = render.Singer(tools.espeak, tools.espeak_data)
    try:
        voices = singer.available("male")[:2]
        requests = []
        for k in range(12):
            name, _ = singer.variant(voices[k % 2], 110.0 * 2 ** (k / 12))
            requests.append((f"en-us+{name}", "la", 175))
        out = singer.speak(requests)
        assert len(out) == 12 and all(np.max(np.abs(y)) > 0.05 for y in out)
        assert singer.speak(requests[3:4])[0].shape == out[3].shape
        assert not [p for p in singer.root.iterdir()]  # each call's folder is removed
    finally:
        singer.close()
    assert not singer.root.exists()


def test_splits_and_seeds():
    assert gen.parse_split("0.8/0.1/0.1") == pytest.approx((0.8, 0.1, 0.1))
    assert gen.parse_split("8,1,1") == pytest.approx((0.8, 0.1, 0.1))
    for bad in ("0.8/0.2", "a/b/c", "-1/1/1", "0/0/0"):
        with pytest.raises(gen.GeneratorError):
            gen.parse_split(bad)
    labels = gen.assign_splits(10, (0.8, 0.1, 0.1), seed=3)
    assert sorted(labels) == sorted(["train"] * 8 + ["valid", "test"])
    assert labels == gen.assign_splits(10, (0.8, 0.1, 0.1), seed=3)
    assert gen.assign_splits(3, (0.8, 0.1, 0.1), seed=0).count("train") >= 1
    assert gen.assign_splits(1, (0.8, 0.1, 0.1), seed=0) == ["train"]
    # song i's seed does not depend on how many songs are made
    assert gen.song_seed(5, 2) == gen.song_seed(5, 2) != gen.song_seed(5, 3)


def test_missing_tools_are_named_with_the_fix(monkeypatch):
    monkeypatch.setattr(render, "_find_library", lambda name, cands: None)
    monkeypatch.setattr(render, "find_soundfonts", lambda extra=(): [])
    monkeypatch.setattr(render, "find_espeak_data", lambda: None)
    with pytest.raises(render.ToolError) as info:
        render.check_tools()
    msg = str(info.value)
    for word in ("FluidSynth", "espeak-ng", "soundfont", "apt-get install", "fluidsynth",
                 "fluid-soundfont-gm", "install.sh"):
        assert word in msg


def test_bad_settings_are_refused(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--songs", "0"]) == 1
    assert "--songs" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x"), "--split", "1/2"]) == 1
    assert main(["synth", str(tmp_path / "x"), "--style", "polka"]) == 1
    assert "polka" in capsys.readouterr().err
    folder = tmp_path / "foreign" / "train" / "00001_pop_C-major"
    folder.mkdir(parents=True)
    (folder / gen.META_FILE).write_text("generator: something else\n")
    job = gen.SongJob(0, 1, 4.0, "train", str(tmp_path / "foreign"))
    with pytest.raises(gen.GeneratorError):
        gen._existing(folder, job)


def test_effects_and_pan_keep_shape_and_level():
    pytest.importorskip("pedalboard")
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((2, 44100))).astype(np.float32)
    for part in (Part("Distortion Guitar", "electric_guitar", "rhythm", 30, tone="distortion"),
                 Part("Lead Vocal", "vocals", "lead vocal", -1),
                 Part("Drum Kit", "drums", "kit", 0, bank=128)):
        fx = gen.effects_for(part, np.random.default_rng(1))
        assert fx and all("type" in f for f in fx)
        y = render.apply_effects(x[:1] if part.sung else x, fx)
        assert y.shape == (2, 44100) and np.isfinite(y).all()
    left = render.pan_stereo(x, -1.0)
    assert np.allclose(left[1], 0, atol=1e-6) and np.max(np.abs(left[0])) > 0
    centre = render.pan_stereo(x, 0.0, width=0.0)
    assert np.allclose(centre[0], centre[1])


def test_summary_file_lists_songs(made):
    out, summary = made
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["songs"] == 2 and len(on_disk["song_list"]) == 2
    rec = on_disk["song_list"][0]
    for key in ("key", "seed", "split", "style", "bpm", "key_signature", "tracks", "stems"):
        assert key in rec
    assert all(t["soundfont"] or t["source"].startswith(("espeak-ng", "Hydrogen kit"))
               for t in rec["tracks"])
    assert sf.info(out / rec["key"] / gen.MIX_FILE).samplerate == 44100
