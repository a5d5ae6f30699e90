"""`stemwright` command line on generated audio: outputs, refusals, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.cli.commands import main
from stemwright.models.synthetic.test_songs import synth_song


@pytest.fixture
def song(tmp_path) -> Path:
    mix, _ = synth_song(4.0, 48000, seed=3)
    path = tmp_path / "My Song.wav"
    sf.write(path, mix.T, 48000, subtype="PCM_24")
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_separate_writes_aligned_stems_that_sum_to_the_mix(song, tmp_path, capsys):
    code, out, err = run(capsys, "separate", str(song), "-o", str(tmp_path / "out"),
                         "--format", "wav", "--bit-depth", "32", "-m", "classic")
    assert code == 0, err
    folder = tmp_path / "out" / "My Song"
    files = sorted(p.name for p in folder.iterdir() if p.name != ".stemwright.json")
    assert (folder / ".stemwright.json").is_file()  # what --skip-existing trusts
    assert files == ["My Song - Bass.wav", "My Song - Drums.wav", "My Song - Other.wav",
                     "My Song - Vocals.wav"]
    mix, sr = sf.read(song, always_2d=True, dtype="float32")
    total = 0
    for name in files:
        data, rate = sf.read(folder / name, always_2d=True, dtype="float32")
        assert rate == sr and data.shape == mix.shape
        total = total + data
    assert np.max(np.abs(total - mix)) < 1e-4  # residual folded into other: exact remix
    assert "not produced by classic: electric guitar, wind" in out


def test_refuses_to_overwrite_without_force(song, tmp_path, capsys):
    out_dir = str(tmp_path / "out")
    assert run(capsys, "separate", str(song), "-o", out_dir, "--stems", "vocals")[0] == 0
    code, _, err = run(capsys, "separate", str(song), "-o", out_dir, "--stems", "vocals")
    assert code == 1 and "already exists" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "separate", str(song), "-o", out_dir, "--stems", "vocals",
                       "--force", "--format", "flac", "--bit-depth", "16")
    assert code == 0, err
    assert (tmp_path / "out" / "My Song" / "My Song - Vocals.flac").exists()


@pytest.mark.parametrize("args, message", [
    (["separate", "{missing}"], "not found"),
    (["separate", "{junk}"], ""),
    (["separate", "{song}", "-m", "classic", "--stems", "wind"], "does not produce wind"),
    (["separate", "{song}", "-m", "nope"], "unknown model"),
    (["separate", "{song}", "-m", "htdemucs"], "stemwright models download htdemucs"),
    (["separate", "{song}", "--format", "flac", "--bit-depth", "32"], "bit-depth"),
    (["separate", "{song}", "--device", "cuda:7"], "CUDA"),
    (["separate", "{song}", "--overlap", "1.5"], "overlap"),
    (["info", "{junk}"], ""),
])
def test_bad_input_gives_one_line_and_nonzero_exit(args, message, song, tmp_path, capsys):
    junk = tmp_path / "junk.mp3"
    junk.write_text("this is not audio")
    fmt = {"missing": str(tmp_path / "missing.wav"), "junk": str(junk), "song": str(song)}
    argv = [a.format(**fmt) for a in args] + ["-o", str(tmp_path / "o")] * (
        args[0] == "separate")
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("stemwright: ")
    assert "Traceback" not in err
    assert message.lower() in err.lower()
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.wav"))


def test_info_and_models_list(song, capsys):
    code, out, _ = run(capsys, "info", str(song))
    assert code == 0 and "48000 Hz" in out and "2 ch" in out
    code, out, _ = run(capsys, "models", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["classic"]["state"] == "built in"
    assert rows["htdemucs"]["state"] == "not downloaded"


def test_bench_prints_json(capsys):
    code, out, _ = run(capsys, "bench", "classic", "--seconds", "3", "--device", "cpu")
    assert code == 0
    report = json.loads(out)
    (res,) = report["results"]
    assert res["model"] == "classic" and res["x_realtime"] > 0 and res["peak_rss_mb"] > 0
    assert "cpu_count" in report["machine"]


def test_bench_takes_a_checkpoint_file(capsys, tmp_path):
    from stemwright.models.architectures import registry as arch

    kwargs = arch.config("masknet", small=True)
    path = arch.save_model(tmp_path / "candidate.safetensors", "masknet",
                           arch.build("masknet", small=True), kwargs)
    code, out, _ = run(capsys, "bench", str(path), "--seconds", "2", "--device", "cpu")
    assert code == 0
    (res,) = json.loads(out)["results"]
    assert res["model"] == str(path) and res["x_realtime"] > 0 and len(res["stems"]) == 6


def test_console_script_entry_point(song, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stemwright.models", "separate", str(song),
                           "-o", str(tmp_path / "cli"), "--stems", "drums"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cli" / "My Song" / "My Song - Drums.wav").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="display check is Linux-only")
def test_gui_without_a_display_is_a_clear_error(monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = run(capsys, "gui")
    assert code == 1 and "no display found" in err and len(err.strip().splitlines()) == 1


def test_the_command_line_starts_without_torch():
    """`stemwright --help` and every command's parsing import no torch (seconds of start-up):
    the model code is imported when a model runs."""
    code = ("import sys\n"
            "from stemwright.models.cli import commands\n"
            "commands.build_parser()\n"
            "print(sorted(m for m in ('torch', 'librosa', 'PySide6') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
