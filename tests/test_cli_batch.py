"""`stemwright separate` on many songs (issue 18): folders searched with their sub-folders,
--jobs worker processes, --skip-existing records, the summary and exit status, torchrun
ranks, and the options --copy-mix, --name-model and --preset."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.cli import batch, commands, runs
from stemwright.models.cli.commands import main
from stemwright.models.synthetic.test_songs import synth_song

SR = 22050
ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def write_song(path: Path, seconds: float = 0.5, seed: int = 0) -> Path:
    mix, _ = synth_song(seconds, SR, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, mix.T, SR, subtype="PCM_16")
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def audio_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.wav"))


def summary_line(stdout: str) -> str:
    (line,) = [x for x in stdout.splitlines() if "summary: " in x]
    return line


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    return dict(env, STEMWRIGHT_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")


# -- folders -----------------------------------------------------------------------------

def test_folders_are_searched_keeping_sub_folders_and_skipping_our_own_output(tmp_path,
                                                                            capsys):
    lib = tmp_path / "lib"
    write_song(lib / "x" / "Tune.wav", seed=1)
    write_song(lib / "y" / "Tune.wav", seed=2)  # same name, another sub-folder: no clash
    write_song(lib / "Live" / "Ballad" / "mix.wav", seed=3)  # named after its folder
    write_song(lib / ".hidden" / "Secret.wav")
    write_song(lib / "x" / ".Skipped.wav")
    write_song(lib / "old" / "Tune" / "Tune - Vocals.wav")  # stems of an earlier version
    (lib / "notes.txt").write_text("not audio")
    out = lib / "out"  # -o inside the searched folder
    code, stdout, err = run(capsys, "separate", str(lib), "-o", str(out), "-m", "classic",
                            "--stems", "vocals")
    assert code == 0, err
    assert audio_files(out) == ["Live/Ballad/Ballad - Vocals.wav", "x/Tune/Tune - Vocals.wav",
                                "y/Tune/Tune - Vocals.wav"]
    assert "summary: 3 done, 0 skipped, 0 failed" in summary_line(stdout)
    assert f"{lib / 'x' / 'Tune.wav'}: 1 stem in {out / 'x' / 'Tune'}" in stdout
    # a second run into another folder never takes the stems written above for songs
    code, stdout, err = run(capsys, "separate", str(lib), "-o", str(tmp_path / "again"),
                            "-m", "classic", "--stems", "vocals")
    assert code == 0, err
    assert "3 done" in summary_line(stdout) and len(audio_files(tmp_path / "again")) == 3


def test_a_folder_and_a_file_in_it_are_the_same_song_twice(tmp_path, capsys, monkeypatch):
    song = write_song(tmp_path / "lib" / "sub" / "Tune.wav")
    monkeypatch.setattr(runs.zoo, "load_separator", lambda *a, **k: pytest.fail("loaded"))
    code, stdout, err = run(capsys, "separate", str(tmp_path / "lib"), str(song), "-o",
                            str(tmp_path / "out"), "-m", "classic")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "same file" in lines[0] and stdout == ""
    code, _, err = run(capsys, "separate", str(tmp_path / "lib" / "nothing"), "-o",
                       str(tmp_path / "out"))
    assert code == 1 and "not found" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "separate", str(tmp_path / "empty"), "-o",
                       str(tmp_path / "out"))
    assert code == 1 and "no songs to separate" in err and "Traceback" not in err


# -- failures, summary, exit status --------------------------------------------------------

def test_one_bad_song_never_stops_the_others(tmp_path, capsys):
    lib = tmp_path / "lib"
    write_song(lib / "Good.wav")
    (lib / "Junk.wav").write_text("this is not audio")
    sf.write(lib / "Click.wav", np.zeros((1, 2), np.float32), 192000)  # too short to separate
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "separate", str(lib), "-o", str(out), "-m", "classic",
                            "--stems", "vocals")
    assert code == 1
    assert audio_files(out) == ["Good/Good - Vocals.wav"]
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("stemwright: error: ") for e in errors)
    assert any("Junk.wav" in e for e in errors) and any("Click.wav" in e for e in errors)
    assert "Traceback" not in err and "unexpected" not in err
    assert "1 done, 0 skipped, 2 failed" in summary_line(stdout)
    failed = [x for x in stdout.splitlines() if x.startswith("  failed: ")]
    assert len(failed) == 2 and any("Click.wav" in f and "short" in f for f in failed)
    assert not list(out.rglob(".stemwright-tmp*"))


def test_a_failure_midway_through_a_song_leaves_none_of_its_files(tmp_path, capsys,
                                                                  monkeypatch):
    write_song(tmp_path / "lib" / "A.wav")
    write_song(tmp_path / "lib" / "B.wav", seed=1)

    def broken(stems, samplerate, exclude, path, **kwargs):
        if "A - " in Path(path).name:
            raise batch.AudioError(f"{path}: could not be written (disk full)")
        return real(stems, samplerate, exclude, path, **kwargs)

    real = batch.export_song_minus
    monkeypatch.setattr(batch, "export_song_minus", broken)
    monkeypatch.setenv("STEMWRIGHT_IN_MEMORY", "1")  # streamed: tests/test_streaming.py
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "separate", str(tmp_path / "lib"), "-o", str(out), "-m",
                            "classic", "--preset", "karaoke")
    assert code == 1 and "disk full" in err and "1 done, 0 skipped, 1 failed" in stdout
    assert sorted(p.name for p in (out / "A").iterdir()) == []  # its vocals were removed
    assert sorted(p.name for p in (out / "B").iterdir()) == [
        ".stemwright.json", "B - Vocals.wav", "B - minus Vocals.wav"]


# -- --skip-existing -------------------------------------------------------------------------

def test_skip_existing_trusts_only_a_matching_record(tmp_path, capsys, monkeypatch):
    song = write_song(tmp_path / "lib" / "Tune.wav")
    write_song(tmp_path / "lib" / "Other.wav", seed=4)
    out = tmp_path / "out"
    args = ["separate", str(tmp_path / "lib"), "-o", str(out), "-m", "classic", "--stems",
            "vocals", "drums", "--skip-existing"]
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    record = json.loads((out / "Tune" / batch.RECORD_NAME).read_text())
    assert record["model"] == "classic" and record["stems"] == ["vocals", "drums"]
    assert record["files"] == ["Tune - Vocals.wav", "Tune - Drums.wav"]
    assert (record["format"], record["bit_depth"], record["residual_to_other"]) == \
        ("wav", 24, True)
    assert record["input"]["size"] == song.stat().st_size and "mtime_ns" in record["input"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}

    monkeypatch.setattr(runs.zoo, "load_separator", lambda *a, **k: pytest.fail("loaded"))
    code, stdout, err = run(capsys, *args)  # nothing to do: the model is not even loaded
    assert code == 0, err
    assert "0 done, 2 skipped, 0 failed" in summary_line(stdout)
    assert "Tune.wav: skipped, already separated with these settings" in stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before

    # other settings, a changed input or a missing stem file: not skipped, and without
    # --force the existing files are refused before any work, in one line
    os.utime(song, ns=(song.stat().st_atime_ns, song.stat().st_mtime_ns + 10**9))
    (out / "Other" / "Other - Drums.wav").unlink()
    for extra in (["--bit-depth", "16"], []):
        code, stdout, err = run(capsys, *args, *extra)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "already exists" in lines[0], err
        assert "--force" in lines[0] and "not written with these settings" in lines[0]
    monkeypatch.undo()
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    code, stdout, err = run(capsys, *args, "--force")  # resume: redo what is not done
    assert code == 0, err
    assert "2 done, 0 skipped" in summary_line(stdout)
    code, stdout, _ = run(capsys, *args)
    assert "0 done, 2 skipped" in summary_line(stdout)


def test_existing_stems_without_skip_or_force_are_refused_naming_both_ways(tmp_path,
                                                                           capsys):
    song = write_song(tmp_path / "Tune.wav")
    out = str(tmp_path / "out")
    assert run(capsys, "separate", str(song), "-o", out, "-m", "classic", "--stems",
               "bass")[0] == 0
    code, _, err = run(capsys, "separate", str(song), "-o", out, "-m", "classic", "--stems",
                       "bass")
    (line,) = err.strip().splitlines()
    assert code == 1 and "already exists" in line and "--force" in line
    assert "--skip-existing" in line


# -- presets and options ---------------------------------------------------------------------

def test_karaoke_with_model_names_and_a_copy_of_the_mix(tmp_path, capsys):
    song = write_song(tmp_path / "My Song.wav")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "separate", str(song), "-o", str(out), "-m", "classic",
                            "--preset", "karaoke", "--name-model", "--copy-mix",
                            "--bit-depth", "32")
    assert code == 0, err
    folder = out / "My Song"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".stemwright.json", "My Song - Mix.wav", "My Song - Vocals (classic).wav",
        "My Song - minus Vocals (classic).wav"]
    assert (folder / "My Song - Mix.wav").read_bytes() == song.read_bytes()
    mix, _ = sf.read(song, always_2d=True, dtype="float32")
    vocals, _ = sf.read(folder / "My Song - Vocals (classic).wav", always_2d=True)
    minus, _ = sf.read(folder / "My Song - minus Vocals (classic).wav", always_2d=True)
    assert np.max(np.abs(vocals + minus - mix)) < 1e-4  # karaoke + vocals = the song
    assert "My Song.wav: 1 stem, the song minus Vocals and a copy of the mix in" in stdout
    assert not list(folder.glob(".stemwright-tmp*"))


@pytest.mark.parametrize("preset, files", [
    ("a-cappella", ["Tune - Vocals.wav"]),
    ("practice-drums", ["Tune - minus Drums.wav"]),
    ("practice-guitar", None),  # classic has no electric guitar
    ("kazoo", None),
])
def test_presets(preset, files, tmp_path, capsys):
    song = write_song(tmp_path / "Tune.wav")
    code, _, err = run(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "-m",
                       "classic", "--preset", preset)
    if files is None:
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "--preset" in lines[0]
        assert not (tmp_path / "out").exists()
        return
    assert code == 0, err
    assert audio_files(tmp_path / "out" / "Tune") == files


def test_preset_and_stems_together_are_refused(tmp_path, capsys):
    song = write_song(tmp_path / "Tune.wav")
    code, _, err = run(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "-m",
                       "classic", "--preset", "karaoke", "--stems", "drums")
    assert code == 1 and "leave out --stems" in err and len(err.strip().splitlines()) == 1


# -- --jobs ---------------------------------------------------------------------------------

def test_threads_per_song_and_gpu_refusal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(batch, "cpu_cores", lambda: 8)
    assert batch.threads_per_song(1, batch.Rank()) == 8
    assert batch.threads_per_song(3, batch.Rank()) == 2
    assert batch.threads_per_song(16, batch.Rank()) == 1
    assert batch.threads_per_song(2, batch.Rank(0, 2, 0, 2)) == 2
    import torch

    monkeypatch.setattr(commands, "resolve_device", lambda spec: torch.device("cuda"))
    song = write_song(tmp_path / "Tune.wav")
    code, _, err = run(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "-m",
                       "classic", "--jobs", "2")
    (line,) = err.strip().splitlines()
    assert code == 1 and "--jobs 1" in line and "--device cpu" in line
    with pytest.raises(SystemExit) as exc:
        main(["separate", str(song), "--jobs", "0"])
    assert exc.value.code == 2


def test_jobs_separates_songs_in_worker_processes(tmp_path, capsys):
    lib = tmp_path / "lib"
    for i, name in enumerate(("A", "B", "C")):
        write_song(lib / f"{name}.wav", seed=i)
    (lib / "Bad.wav").write_text("not audio")
    out = tmp_path / "out"
    start = time.monotonic()
    code, stdout, err = run(capsys, "separate", str(lib), "-o", str(out), "-m", "classic",
                            "--stems", "vocals", "--jobs", "2")
    assert time.monotonic() - start < 240
    assert code == 1 and "Bad.wav" in err
    assert audio_files(out) == ["A/A - Vocals.wav", "B/B - Vocals.wav", "C/C - Vocals.wav"]
    assert "3 done, 0 skipped, 1 failed" in summary_line(stdout)
    assert sum(" 1 stem in " in x for x in stdout.splitlines()) == 3
    assert all((out / n / batch.RECORD_NAME).is_file() for n in "ABC")


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT")
def test_ctrl_c_stops_the_workers_and_leaves_no_half_written_files(tmp_path):
    lib = tmp_path / "lib"
    for i in range(6):
        write_song(lib / f"Song{i}.wav", seconds=4.0, seed=i)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stemwright.models.cli", "separate", str(lib), "-o",
         str(out), "-m", "classic", "--jobs", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path),
        start_new_session=True)
    try:
        first = proc.stdout.readline()  # a song is done: the others are in flight or queued
        assert ": 4 stems in " in first, proc.stderr.read()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C in a terminal does
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert "summary: " in stdout and "not finished" in stdout
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # no worker process outlives the command
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("a worker process is still running")
    assert not [p for p in out.rglob("*") if p.name.startswith(".stemwright-tmp")]
    for folder in out.iterdir():  # each song folder: complete with its record, or empty
        names = {p.name for p in folder.iterdir()}
        if names:
            record = json.loads((folder / batch.RECORD_NAME).read_text())
            assert names == {batch.RECORD_NAME, *record["files"]}


# -- torchrun -----------------------------------------------------------------------------

def test_ranks_share_the_songs_in_a_fixed_order():
    songs = [batch.Song(Path(f"{n}.wav"), n, Path("out") / n) for n in "dbca"]
    parts = [batch.share(songs, batch.Rank(r, 3)) for r in range(3)]
    assert [[s.name for s in p] for p in parts] == [["a", "d"], ["b"], ["c"]]
    assert batch.rank_from_env({}) == batch.Rank()
    assert batch.rank_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                                "LOCAL_WORLD_SIZE": "2"}) == batch.Rank(1, 2, 1, 2)
    for bad in ({"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x", "WORLD_SIZE": "2"}):
        with pytest.raises(batch.BatchError):
            batch.rank_from_env(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (VENV_BIN / "torchrun").exists(), reason="needs torchrun")
def test_torchrun_ranks_write_every_song_exactly_once_and_resume(tmp_path):
    lib = tmp_path / "lib"
    names = ["Alpha", "Beta", "Gamma"]
    for i, name in enumerate(names):
        write_song(lib / f"{name}.wav", seed=i)
    out = tmp_path / "out"

    def torchrun(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "torchrun"), "--nproc_per_node", "2", "--master_addr",
             "127.0.0.1", "--master_port", str(_free_port()), "-m", "stemwright.models.cli",
             "separate", str(lib), "-o", str(out), "-m", "classic", "--stems", "vocals",
             *extra], capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env=_env(tmp_path))

    proc = torchrun("--skip-existing")
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = [x for x in proc.stdout.splitlines() if " 1 stem in " in x]
    assert sorted(x.split(": ", 1)[1].split(".wav")[0].rsplit("/", 1)[-1] for x in done) \
        == names  # every song written once, by one rank
    assert "rank 0/2: summary: 2 done" in proc.stdout
    assert "rank 1/2: summary: 1 done" in proc.stdout
    assert audio_files(out) == [f"{n}/{n} - Vocals.wav" for n in names]
    (out / "Beta" / "Beta - Vocals.wav").unlink()  # as if a rank was stopped midway
    (out / "Beta" / batch.RECORD_NAME).unlink()
    proc = torchrun("--skip-existing")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sum(" 1 stem in " in x for x in proc.stdout.splitlines()) == 1
    assert proc.stdout.count("skipped, already separated") == 2
    assert audio_files(out) == [f"{n}/{n} - Vocals.wav" for n in names]
