"""The first hour at the command line: song folders named after the song, clashes refused
before any work, defaults for train and evaluate, honest wording, no native noise."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.cli import commands as cli
from stemwright.models.cli.commands import main
from stemwright.models.remix.export import GENERIC_SONG_NAMES, output_clash, song_name
from stemwright.models.synthetic.test_songs import synth_song
from stemwright.models.zoo import catalog as zoo

SR = 44100


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def write_song(path: Path, seconds: float = 1.0, seed: int = 0) -> Path:
    mix, _ = synth_song(seconds, SR, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, mix.T, SR, subtype="PCM_16")
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- 1. output folders named after the song; clashes refused up front -------------------

def test_song_name_takes_the_folder_of_a_generic_file_name(tmp_path, monkeypatch):
    assert song_name("resources/demo/ballad_Eb-major/mix.flac") == "ballad_Eb-major"
    assert song_name("a/Ballad/MIX.WAV") == "Ballad"
    assert song_name("a/Ballad/Mix Master.wav") == "Ballad"
    assert song_name("a/Ballad/mixture.wav") == "Ballad"
    assert song_name("a/Ballad/My Song.wav") == "My Song"
    assert song_name("a/Ballad/remix.wav") == "remix"
    monkeypatch.chdir(tmp_path)
    assert song_name("mix.flac") == tmp_path.name  # the folder it is in, seen from inside
    assert {"mix", "master", "song", "mix_master"} <= GENERIC_SONG_NAMES


def test_two_mix_files_go_to_their_own_folders(tmp_path, capsys):
    a = write_song(tmp_path / "in" / "ballad" / "mix.wav", seed=1)
    b = write_song(tmp_path / "in" / "shuffle" / "mix.wav", seed=2)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "separate", str(a), str(b), "-o", str(out), "-m",
                            "classic", "--stems", "vocals")
    assert code == 0, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "ballad/ballad - Vocals.wav", "shuffle/shuffle - Vocals.wav"]
    assert f"1 stem in {out / 'ballad'}" in stdout and "1 stems" not in stdout


@pytest.mark.parametrize("layout", ["same file", "same name", "same folder", "case"])
def test_songs_that_would_share_a_folder_are_refused_before_any_work(layout, tmp_path,
                                                                     capsys, monkeypatch):
    first = write_song(tmp_path / "in" / "x" / "Tune.wav")
    second = {"same file": first,
              "same name": tmp_path / "in" / "y" / "Tune.wav",
              "same folder": tmp_path / "in" / "Tune" / "master.wav",
              "case": tmp_path / "in" / "y" / "TUNE.wav"}[layout]
    if not second.exists():
        write_song(second)

    def no_separation(*args, **kwargs):
        raise AssertionError("a separator was loaded despite the clash")

    monkeypatch.setattr(zoo, "load_separator", no_separation)
    out = tmp_path / "out"
    for extra in ([], ["--force"]):
        code, stdout, err = run(capsys, "separate", str(first), str(second), "-o", str(out),
                                "-m", "classic", *extra)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("stemwright: error: ")
        assert str(first) in lines[0] and str(second) in lines[0]
        assert "same file" in lines[0] if layout == "same file" else \
            "would both be separated into" in lines[0]
        assert "unexpected" not in err and not out.exists() and stdout == ""


def test_output_clash_helper(tmp_path):
    assert output_clash([tmp_path / "a" / "mix.wav", tmp_path / "b" / "mix.wav"], "o") is None
    first, second, folder = output_clash(
        [tmp_path / "a" / "mix.wav", tmp_path / "b" / "a.flac", tmp_path / "c.wav"], "o")
    assert (first.name, second.name, folder) == ("mix.wav", "a.flac", Path("o") / "a")


# -- 4. wording: counts and where the residual went --------------------------------------

@pytest.mark.parametrize("stems, residual, expected", [
    (["vocals", "drums"], [], "2 stems in {folder} (residual {db} dB, in other (not written))"),
    (["vocals", "other"], [], "2 stems in {folder} (residual {db} dB, folded into other)"),
    (["vocals"], ["--no-residual"], "1 stem in {folder} (residual {db} dB, not in any "
                                    "written file)"),
])
def test_separate_reports_where_the_residual_went(stems, residual, expected, tmp_path,
                                                  capsys, monkeypatch):
    from stemwright.models.separation.separator import Separator

    song = write_song(tmp_path / "Tune.wav")
    original = Separator.separate

    def leaky(self, mix, samplerate, *args, **kwargs):  # classic sums exactly: add a leak
        result = original(self, mix, samplerate, *args, **kwargs)
        result.residual_db = -21.5
        return result

    monkeypatch.setattr(Separator, "separate", leaky)
    monkeypatch.setenv("STEMWRIGHT_IN_MEMORY", "1")  # the leak is added to the whole song
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "separate", str(song), "-o", str(out), "-m", "classic",
                            "--stems", *stems, *residual)
    assert code == 0, err
    assert f"Tune.wav: {expected.format(folder=out / 'Tune', db='-21.5')}" in stdout
    assert len(list((out / "Tune").glob("*.wav"))) == len(stems)


def test_residual_note_covers_every_case():
    def note(db, in_other, written):
        return cli._residual_note(SimpleNamespace(residual_db=db, residual_in_other=in_other),
                                  written)

    assert note(float("-inf"), True, ["vocals"]) == \
        "no residual: the model's stems add up to the mix"
    assert note(-30.0, True, ["other"]) == "residual -30.0 dB, folded into other"
    assert note(-30.0, True, ["vocals"]) == "residual -30.0 dB, in other (not written)"
    assert note(-30.0, False, ["other"]) == "residual -30.0 dB, not in any written file"
    assert "folded" not in note(-30.0, False, ["vocals", "other"])


def test_synth_summary_counts_read_right():
    from stemwright.models.synthetic.generate import describe_summary

    summary = {"songs": 1, "audio_seconds": 60.0, "bytes": 1e6, "mb_per_audio_minute": 1.0,
               "splits": {"train": {"songs": 1, "seconds": 60.0}},
               "speed_x_realtime": 2.0, "rendered_songs": 1, "workers": 1,
               "wall_seconds": 30.0, "audio_seconds_per_cpu_second": 2.0,
               "styles": {"pop": 1},
               "stems": {"vocals": {"songs": 1, "tracks": 1, "instruments": {"voice": 1}}},
               "soundfonts": [{"name": "GeneralUser", "tracks": 1}]}
    text = "\n".join(describe_summary(summary))
    assert "1 song," in text and "1 song rendered with 1 worker in" in text
    assert "in 1 song, 1 track (voice 1)" in text and "GeneralUser (1 track)" in text
    assert not any(f"1 {noun}s" in text for noun in ("song", "track", "worker"))


# -- 2. train: the default model, the choices, a named run folder ------------------------

def test_train_help_lists_every_architecture_and_zoo_model(capsys, monkeypatch):
    from stemwright.models.architectures import registry as archs

    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside names
    with pytest.raises(SystemExit) as exc:
        main(["train", "-h"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in [*archs.ARCHITECTURES, "masknet", zoo.DEFAULT_MODEL, "htdemucs", "umxhq"]:
        assert name in text, name
    assert f"default: {zoo.DEFAULT_MODEL}" in text
    assert "runs/<model>-<YYYYmmdd-HHMMSS>" in text


def test_building_the_parser_imports_no_architecture():
    code = ("import sys; from stemwright.models.cli.commands import build_parser; build_parser(); "
            "print('stemwright.models.architectures.registry' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_train_without_model_or_out_fine_tunes_the_default_into_a_named_run(
        tmp_path, capsys, monkeypatch):
    from stemwright.models.training import trainer as training

    seen = {}

    def fake_train(cfg, resume=False, on_event=None, control=None):
        seen["cfg"] = cfg
        return SimpleNamespace(reason="finished", epochs=1, best_score=1.0, out=cfg.out,
                               installed=cfg.model_name())

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "songs").mkdir()
    code, stdout, err = run(capsys, "train", "songs")
    assert code == 0, err
    cfg = seen["cfg"]
    assert cfg.model == zoo.DEFAULT_MODEL == "stemwright6"
    out = Path(cfg.out)
    assert out.parent == Path("runs") and out.name.startswith("stemwright6-")
    time.strptime(out.name.removeprefix("stemwright6-"), "%Y%m%d-%H%M%S")
    assert cfg.model_name() == out.name != "training-run"
    first = stdout.splitlines()[0]
    assert first.startswith(f"run folder: {out}") and f"'{out.name}'" in first
    assert "after 1 epoch (" in stdout
    # with --json the start line goes to stderr, keeping stdout JSON only
    code, stdout, err = run(capsys, "train", "songs", "--json")
    assert code == 0 and stdout == "" and err.startswith("run folder: runs")


def test_the_default_model_resolves_like_a_zoo_name():
    from stemwright.models.training.model_init import init_model

    init = init_model(zoo.DEFAULT_MODEL)
    assert init.origin["from"] == "zoo" and init.origin["model"] == zoo.DEFAULT_MODEL
    assert init.architecture == "masknet"


def test_default_run_folder_is_new_and_named_after_the_model(tmp_path):
    from stemwright.models.cli.train import default_run_folder

    when = time.strptime("20250131-142501", "%Y%m%d-%H%M%S")
    first = default_run_folder("stemwright6", tmp_path, when)
    assert Path(first) == tmp_path / "stemwright6-20250131-142501"
    Path(first).mkdir()
    assert Path(default_run_folder("stemwright6", tmp_path, when)).name == \
        "stemwright6-20250131-142501-2"
    ckpt = tmp_path / "my model.safetensors"
    ckpt.write_bytes(b"")
    assert Path(default_run_folder(str(ckpt), tmp_path, when)).name == \
        "my-model-20250131-142501"


def test_torchrun_without_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    (tmp_path / "songs").mkdir()
    code, _, err = run(capsys, "train", str(tmp_path / "songs"))
    assert code == 1 and "--out" in err and len(err.strip().splitlines()) == 1


# -- 3. evaluate: the default model and the IRM2 oracle by default ----------------------

def test_evaluate_without_model_or_oracle_scores_the_default_and_irm2(tmp_path, capsys):
    _, stems = synth_song(1.5, SR, seed=5, stems=("vocals", "drums"))
    song = tmp_path / "songs" / "Song One"
    song.mkdir(parents=True)
    sf.write(song / "Lead Vox.wav", stems["vocals"].T, SR, subtype="FLOAT")
    sf.write(song / "Drums.wav", stems["drums"].T, SR, subtype="FLOAT")
    code, stdout, err = run(capsys, "evaluate", str(tmp_path / "songs"), "--device", "cpu")
    assert code == 0, err
    assert "1 song\n" in stdout
    rows = [line.split()[0] for line in stdout.splitlines() if line.strip()]
    assert rows.count(zoo.DEFAULT_MODEL) == 2 and rows.count("irm2") == 2  # SDR, SI-SDR


def test_evaluate_help_states_the_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["evaluate", "-h"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{zoo.DEFAULT_MODEL} and the irm2 oracle" in text


# -- 5. no native library noise on stderr ------------------------------------------------

def test_quiet_native_stderr_restores_fd2(capfd):
    from stemwright.models.audio.io import _quiet_native_stderr

    os.write(2, b"before\n")
    with _quiet_native_stderr():
        os.write(2, b"hidden\n")
        with _quiet_native_stderr():  # nested
            os.write(2, b"hidden too\n")
        os.write(2, b"still hidden\n")
    with pytest.raises(RuntimeError), _quiet_native_stderr():
        raise RuntimeError("decoder failed")
    os.write(2, b"after\n")
    barrier = threading.Barrier(4)

    def worker() -> None:
        for i in range(50):
            with _quiet_native_stderr():
                if i == 0:
                    barrier.wait(timeout=10)  # all four inside at once
                os.write(2, b"thread\n")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(2, b"end\n")
    assert capfd.readouterr().err == "before\nafter\nend\n"


@pytest.fixture
def damaged_mp3(tmp_path) -> tuple[Path, Path]:
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    t = np.arange(3 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    good = tmp_path / "good.mp3"
    sf.write(good, np.stack([tone, tone], axis=1), SR, format="MP3")
    data = good.read_bytes()
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(data[:2000] + bytes(4000) + data[6000:])  # frames zeroed mid-file
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(data[:len(data) // 4])
    return damaged, truncated


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, STEMWRIGHT_CACHE_DIR=str(cwd / "cache"))
    return subprocess.run([sys.executable, "-m", "stemwright.models.cli", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_damaged_mp3_gives_our_one_line_and_no_decoder_noise(damaged_mp3, tmp_path):
    damaged, truncated = damaged_mp3
    for path in (damaged, truncated):
        proc = _cli("separate", str(path), "-m", "classic", "-o", str(tmp_path / "out"),
                    cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("stemwright:"), proc.stderr
        assert path.name in lines[0] and "mpg123" not in proc.stderr
    proc = _cli("info", str(truncated), cwd=tmp_path)  # the header alone is fine
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
