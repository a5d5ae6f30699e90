"""Exports are all or nothing, output folders are checked before any work, and odd names
(very long, not UTF-8, the same song twice) are shortened or refused: issue 20, items 1, 8
and 10 (long names, same-name clash, stale temporaries, non-UTF-8 names)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.cli.commands import main
from stemwright.models.errors import AudioError, StemwrightError
from stemwright.models.remix import export
from stemwright.models.remix.export import (
    MAX_NAME_BYTES,
    OutputFolderError,
    check_output_folder,
    export_daw_session,
    export_remix,
    export_stems,
    output_clash,
    remove_stale_temporaries,
    song_name,
    stem_filename,
)
from stemwright.models.remix.mixer import MixerState
from stemwright.models.synthetic.test_songs import synth_song
from stemwright.models.zoo import catalog as zoo

SR = 22050
STEMS = ("vocals", "drums", "bass", "other")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def make_stems(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: (0.05 * rng.standard_normal((2, SR // 4))).astype(np.float32) for s in STEMS}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def write_song(path: Path, seconds: float = 0.5) -> Path:
    mix, _ = synth_song(seconds, SR, seed=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, mix.T, SR, subtype="PCM_16")
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if the command gets as far as loading a model."""
    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the output was checked")
    monkeypatch.setattr(zoo, "load_separator", refuse)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stemwright: error: "), err
    assert "Traceback" not in err and "unexpected" not in err
    return lines[0]


# -- 1. all or nothing ------------------------------------------------------------------

def test_failure_during_forced_export_keeps_the_old_stems(tmp_path, monkeypatch):
    export_stems(make_stems(1), SR, tmp_path, "Song")
    before = snapshot(tmp_path)
    real = export.save_audio
    calls = []

    def fail_on_other(path, *args, **kwargs):  # the 4th stem ("Other") cannot be written
        calls.append(path)
        if len(calls) == 4:
            raise AudioError(f"{Path(path).name}: could not be saved (No space left on device)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(export, "save_audio", fail_on_other)
    with pytest.raises(AudioError) as info:
        export_stems(make_stems(2), SR, tmp_path, "Song", overwrite=True)
    assert "Song - Other.wav" in str(info.value) and ".stemwright-tmp" not in str(info.value)
    assert snapshot(tmp_path) == before  # every old stem, unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporaries


def test_failure_while_swapping_puts_the_old_stems_back(tmp_path, monkeypatch):
    export_stems(make_stems(1), SR, tmp_path, "Song")
    before = snapshot(tmp_path)
    real = os.replace

    def locked(src, dst, *a, **k):  # e.g. Windows: the bass stem is open in a DAW
        if Path(dst).name == "Song - Bass.wav":
            raise PermissionError(13, "Permission denied")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", locked)
    with pytest.raises(AudioError, match="Song - Bass.wav.*previous files are unchanged"):
        export_stems(make_stems(2), SR, tmp_path, "Song", overwrite=True)
    monkeypatch.setattr(os, "replace", real)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)


def test_forced_export_replaces_every_stem(tmp_path):
    export_stems(make_stems(1), SR, tmp_path, "Song")
    before = snapshot(tmp_path)
    export_stems(make_stems(2), SR, tmp_path, "Song", overwrite=True)
    after = snapshot(tmp_path)
    assert sorted(after) == sorted(before)
    assert all(after[name] != before[name] for name in after)


def test_daw_session_failure_keeps_the_old_session(tmp_path, monkeypatch):
    paths = export_daw_session(make_stems(1), SR, tmp_path, "Song")
    before = snapshot(tmp_path)
    assert paths[-1].name == "Song.RPP"

    def no_project(text):
        def write(stage):
            raise OSError(28, "No space left on device")
        return write

    monkeypatch.setattr(export, "_text_writer", no_project)
    with pytest.raises(AudioError, match=r"Song\.RPP: could not be written"):
        export_daw_session(make_stems(2), SR, tmp_path, "Song", overwrite=True)
    assert snapshot(tmp_path) == before


def test_remix_and_text_exports_leave_no_temporaries(tmp_path):
    stems = make_stems(1)
    out = export_remix(stems, SR, MixerState.for_stems(stems), tmp_path / "mix.wav")
    export.write_text_atomic(tmp_path / "a.txt", "hello")
    assert sf.info(out).frames == SR // 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "mix.wav"]


# -- 8. output folder checked before any work -------------------------------------------

def test_separate_force_with_a_folder_in_a_stems_place_keeps_the_others(tmp_path, capsys,
                                                                         monkeypatch):
    song = write_song(tmp_path / "My Song.wav")
    out = tmp_path / "out"
    code, _, err = run(capsys, "separate", str(song), "-o", str(out), "-m", "classic")
    assert code == 0, err
    folder = out / "My Song"
    other = folder / "My Song - Other.wav"
    other.unlink()
    other.mkdir()
    before = snapshot(folder)
    monkeypatch.setattr(zoo, "load_separator", lambda *a, **k: pytest.fail("model loaded"))
    code, _, err = run(capsys, "separate", str(song), "-o", str(out), "-m", "classic",
                       "--force")
    line = one_error_line(err)
    assert code == 1 and str(other) in line and "folder" in line
    assert snapshot(folder) == before and len(before) == 4  # 3 stems and the record


def test_export_refuses_a_folder_in_a_stems_place_before_writing(tmp_path):
    export_stems(make_stems(1), SR, tmp_path, "Song")
    (tmp_path / "Song - Other.wav").unlink()
    (tmp_path / "Song - Other.wav").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(OutputFolderError, match="Song - Other.wav is a folder"):
        export_stems(make_stems(2), SR, tmp_path, "Song", overwrite=True)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["o is a file", "file above o", "file as song folder",
                                  "cannot create"])
def test_output_folder_problems_refused_before_any_work(case, tmp_path, capsys, no_model):
    song = write_song(tmp_path / "in" / "Tune.wav")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = {"o is a file": blocker, "file above o": blocker / "sub",
           "file as song folder": tmp_path, "cannot create": Path("/proc/stemwright-out")}[case]
    if case == "file as song folder":
        (tmp_path / "Tune").write_text("not a folder")
    if case == "cannot create" and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    start = time.monotonic()
    code, stdout, err = run(capsys, "separate", str(song), "-o", str(out), "-m", "classic")
    line = one_error_line(err)
    assert code == 1 and stdout == "" and time.monotonic() - start < 5
    named = {"o is a file": str(blocker), "file above o": str(blocker),
             "file as song folder": str(tmp_path / "Tune"), "cannot create": "/proc"}[case]
    assert named in line and ("choose another" in line or "choose a folder" in line)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="permissions do not stop root")
def test_read_only_output_folder_refused(tmp_path, capsys, no_model):
    song = write_song(tmp_path / "Tune.wav")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, _, err = run(capsys, "separate", str(song), "-o", str(out), "-m", "classic")
    finally:
        out.chmod(0o755)
    line = one_error_line(err)
    assert code == 1 and str(out) in line and "writable" in line


def test_check_output_folder_accepts_new_and_existing_folders(tmp_path):
    check_output_folder(tmp_path / "new" / "deeper", ["A", "B"])
    (tmp_path / "A").mkdir()
    check_output_folder(tmp_path, ["A", "B"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A"]  # the probes are gone


# -- 10. long names, the same song twice, stale temporaries, non-UTF-8 names -------------

def test_251_character_name_separates_with_names_that_fit(tmp_path, capsys):
    song = write_song(tmp_path / ("x" * 251 + ".wav"))
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "separate", str(song), "-o", str(out), "-m", "classic")
    assert code == 0, err
    (folder,) = out.iterdir()
    names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    assert len(names) == 4
    assert all(len(n.encode()) <= MAX_NAME_BYTES and n.startswith("xxxxxxxxxx") for n in names)
    assert any(n.endswith(" - Vocals.wav") for n in names)


def test_long_names_stay_unique_readable_and_whole_utf8_characters():
    a, b = "é" * 150 + " take 1", "é" * 150 + " take 2"
    for song in (a, b, "日本語" * 60):
        for stem in ("vocals", "electric_guitar"):
            name = stem_filename(song, stem, "flac")
            assert len(name.encode()) <= MAX_NAME_BYTES and name.endswith(".flac")
            assert name.encode().decode("utf-8") == name and song[:20] in name
    assert stem_filename(a, "vocals", "wav") != stem_filename(b, "vocals", "wav")
    assert song_name("a" * 300 + ".wav") != song_name("a" * 299 + "b.wav")
    assert len(song_name("é" * 127 + ".wav").encode()) <= MAX_NAME_BYTES
    assert stem_filename("Song", "vocals", "wav") == "Song - Vocals.wav"  # short: unchanged
    with pytest.raises(StemwrightError, match="longer than"):
        stem_filename("Song", "vocals", "wav", pattern="{stem}" * 40)


def test_same_song_name_in_two_unicode_forms_is_a_clash(tmp_path, capsys, no_model):
    composed = unicodedata.normalize("NFC", "Café")
    decomposed = unicodedata.normalize("NFD", "Café")
    assert composed != decomposed
    first = write_song(tmp_path / "a" / f"{composed}.wav")
    second = write_song(tmp_path / "b" / f"{decomposed}.wav")
    assert output_clash([first, second], tmp_path / "out") is not None
    code, _, err = run(capsys, "separate", str(first), str(second), "-o", str(tmp_path / "o"),
                       "-m", "classic")
    assert code == 1 and "would both be separated into" in one_error_line(err)


def test_stale_temporaries_of_a_killed_export_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - 3600
    stale = [f".stemwright-tmp-{dead.pid}-0123456789ab.wav",
             f"..stemwright-tmp-{dead.pid}-0123456789ab.wav.89abcdef.part",
             f".stemwright-tmp-{os.getpid()}-abcdefabcdef.bak",  # over a day old
             ".Song - Vocals.wav.1a2b3c4d.part"]  # left by save_audio in earlier versions
    kept = [f".stemwright-tmp-{os.getpid()}-0123456789ab.wav",  # ours, a live export
            f".stemwright-tmp-{dead.pid}-ffffffffffff.wav",  # its process ended just now
            ".Other song.wav.1a2b3c4d.part", "notes.part", ".stemwright-tmp-notes"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"partial")
    os.utime(tmp_path / stale[0], (old, old))
    os.utime(tmp_path / stale[1], (old, old))
    os.utime(tmp_path / stale[2], (old - 86400, old - 86400))
    os.utime(tmp_path / stale[3], (old, old))
    for name in kept[:1] + kept[2:]:
        os.utime(tmp_path / name, (old, old))
    export_stems(make_stems(1), SR, tmp_path, "Song")
    left = {p.name for p in tmp_path.iterdir()}
    assert not left & set(stale)
    assert set(kept) <= left
    assert remove_stale_temporaries(tmp_path / "missing") == []


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs bytes file names")
def test_non_utf8_names_are_refused_in_one_line_or_made_safe(tmp_path, capsys, no_model):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.wav"
    try:
        with open(raw, "wb"):
            pass
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    path = os.fsdecode(raw)
    code, stdout, err = run(capsys, "separate", path, "-o", str(tmp_path / "out"))
    line = one_error_line(err)
    assert code == 1 and "caf\\xe9.wav" in line and "UTF-8" in line and stdout == ""
    song = write_song(tmp_path / "Tune.wav")
    bad_out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xff")
    code, _, err = run(capsys, "separate", str(song), "-o", bad_out)
    assert code == 1 and "UTF-8" in one_error_line(err)
    # the engine's own names never carry the undecodable bytes
    assert song_name(path) == "caf_"
    with pytest.raises(OutputFolderError):
        check_output_folder(bad_out, ["Tune"])


def test_daw_session_with_a_folder_where_the_project_goes_keeps_the_old_stems(tmp_path):
    export_daw_session(make_stems(1), SR, tmp_path, "Song")
    (tmp_path / "Song.RPP").unlink()
    (tmp_path / "Song.RPP").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(StemwrightError, match="Song.RPP"):
        export_daw_session(make_stems(2), SR, tmp_path, "Song", overwrite=True)
    assert snapshot(tmp_path) == before and len(before) == 4
