"""Findings of the second fuzz run of issue 20 (packaging/fuzz_cli.py), one test each.

Oracles on songs shorter than half their STFT window (a one-sample track aborted the whole
evaluation with a torch padding error) and on NaN references; BSS Eval on identical stems
(an SVD fallback took minutes); a one-sample 192 kHz file through `separate` (the refusal
must name the file); a float file at 1e30 (numpy warnings, and an error naming a stem); a
mono model file that imported and then failed at the first separation; a model name too
long for a folder; argparse usage errors and unknown --stems names; a mirror answering
garbage or an address with line breaks (multi-line errors).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from stemwright.models.architectures.masknet import MaskNet
from stemwright.models.classic.oracles import get_oracle
from stemwright.models.cli.commands import main
from stemwright.models.errors import ModelError, StemwrightError
from stemwright.models.zoo import download as dl
from stemwright.models.zoo.checkpoint import CheckpointMeta, save_checkpoint

STEMS = ["vocals", "drums"]
TINY = dict(sources=STEMS, audio_channels=2, n_fft=64, hop=16, front_channels=2, hidden=8,
            blocks=1, local_channels=2, samplerate=44100)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def one_error_line(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stemwright: error: "), err
    for word in words:
        assert word in lines[0], err
    return lines[0]


def tracks_song(folder, frames: int, sr: int = 8000) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("Lead Vox.wav", "Kick.wav", "Bass DI.wav"):
        sf.write(folder / name, (0.1 * rng.standard_normal((frames, 2))).astype(np.float32),
                 sr)


@pytest.mark.parametrize("oracle", ["irm1", "irm2", "ibm"])
@pytest.mark.parametrize("length", [1, 2, 1024])
def test_oracles_separate_audio_shorter_than_their_window(oracle, length):
    rng = np.random.default_rng(1)
    refs = {s: rng.standard_normal((2, length)).astype(np.float32) for s in STEMS}
    mix = sum(refs.values())
    out = get_oracle(oracle).separate(mix, 44100, refs)
    assert all(v.shape == (2, length) for v in out.stems.values())
    assert np.allclose(sum(out.stems.values()), mix, atol=1e-4)


def test_oracle_refuses_nan_references_in_one_line():
    mix = np.zeros((2, 4000), np.float32)
    bad = mix.copy()
    bad[0, 10] = np.nan
    with pytest.raises(StemwrightError) as exc:
        get_oracle("irm2").separate(mix, 8000, {"vocals": bad, "drums": mix})
    assert "\n" not in str(exc.value) and "NaN" in str(exc.value)


@pytest.mark.parametrize("oracle", ["irm1", "irm2", "ibm"])
def test_evaluate_a_one_sample_song_scores_the_others(tmp_path, capsys, oracle):
    tracks_song(tmp_path / "c" / "Good", 9600)
    tracks_song(tmp_path / "c" / "Tiny", 1)
    start = time.monotonic()
    code = main(["evaluate", "--oracle", oracle, "-o", "report", "c"])
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert code == 0, err
    assert "unexpected" not in err and "Traceback" not in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["songs"]) == 2


def test_one_sample_192_khz_file_is_refused_naming_the_file(tmp_path, capsys):
    sf.write(tmp_path / "click.wav", np.zeros((1, 2), np.float32), 192000)
    start = time.monotonic()
    code = main(["separate", "-m", "classic", "-o", "out", "click.wav"])
    assert time.monotonic() - start < 10
    assert code == 1
    one_error_line(capsys.readouterr().err, "click.wav", "too short")
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def test_mono_model_file_is_refused_at_import(tmp_path, capsys):
    path = tmp_path / "mono.safetensors"
    kwargs = {**TINY, "audio_channels": 1}
    torch.manual_seed(0)
    save_checkpoint(path, MaskNet(**kwargs), CheckpointMeta("masknet", kwargs, STEMS, 44100))
    code = main(["models", "import", "mono", str(path)])
    assert code == 1
    one_error_line(capsys.readouterr().err, "mono.safetensors", "1-channel", "stereo")
    assert not (tmp_path / "cache" / "models" / "mono").exists()


def test_stereo_model_file_imports_and_separates(tmp_path, capsys):
    path = tmp_path / "stereo.safetensors"
    torch.manual_seed(0)
    save_checkpoint(path, MaskNet(**TINY), CheckpointMeta("masknet", dict(TINY), STEMS,
                                                          44100))
    sf.write(tmp_path / "tune.wav", np.zeros((4410, 2), np.float32), 44100)
    assert main(["models", "import", "stereo", str(path)]) == 0
    assert main(["separate", "-m", "stereo", "-o", "out", "tune.wav"]) == 0, \
        capsys.readouterr().err
    assert sf.info(str(tmp_path / "out" / "tune" / "tune - Vocals.wav")).frames == 4410


def test_too_long_model_name_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, MaskNet(**TINY), CheckpointMeta("masknet", dict(TINY), STEMS,
                                                          44100))
    code = main(["models", "import", "m" * 300, str(path)])
    assert code == 1
    line = one_error_line(capsys.readouterr().err, "at most")
    assert len(line) < 300 and "unexpected" not in line
    assert main(["models", "remove", "m" * 300]) == 1  # unknown, not an OSError
    assert "unexpected" not in capsys.readouterr().err


def test_float_file_far_beyond_full_scale_is_refused_in_one_line(tmp_path, capsys):
    t = np.arange(4000) / 8000
    loud = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).T.astype(np.float32) * 1e30
    sf.write(tmp_path / "loud.wav", loud, 8000, subtype="FLOAT")
    code = main(["separate", "-m", "classic", "-o", "out", "loud.wav"])
    assert code == 1
    one_error_line(capsys.readouterr().err, "loud.wav", "full scale")  # not a stem's name
    sf.write(tmp_path / "hot.wav", loud / 1e30 * 4, 8000, subtype="FLOAT")  # headroom: fine
    assert main(["separate", "-m", "classic", "-o", "out", "hot.wav"]) == 0


def test_identical_references_are_scored_in_bounded_time():
    """Two stems that are the same recording make BSS Eval's system exactly singular: the
    SVD least-squares fallback took over a minute for one 1 s window of three stems."""
    from stemwright.models.evaluation.metrics import bss_eval

    rng = np.random.default_rng(0)
    same = rng.standard_normal((1, 2, 8000))
    refs = np.concatenate([same, same, rng.standard_normal((1, 2, 8000))])
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    start = time.monotonic()
    out = bss_eval(refs, ests, 8000, 8000, device="cpu")
    assert time.monotonic() - start < 30  # about 3 s; 67 s before
    assert np.all(np.isfinite(out.sdr)) and np.all(np.abs(out.sdr - 20) < 1)


@pytest.mark.parametrize("argv", [
    ["separate", "-m", "classic", "--stems", "vocals", "tune.wav"],  # --stems eats the file
    ["separate", "-m", "classic", "--overlap", "abc", "tune.wav"],
    ["bogus", "tune.wav"],
])
def test_usage_errors_are_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = one_error_line(capsys.readouterr().err, "--help")
    assert "usage:" not in line


@pytest.fixture
def garbage_server():
    """A loopback 'mirror' that answers every request with a two-line non-HTTP reply."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(10)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"HELLO THERE\r\nSECOND LINE\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


def test_garbage_status_line_gives_one_line(garbage_server, tmp_path):
    with pytest.raises(ModelError) as exc:
        dl.download_file(f"{garbage_server}/m.th", tmp_path / "m.th", stall_seconds=2.0)
    assert "\n" not in str(exc.value) and "\r" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_mirror_with_a_line_break_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEMWRIGHT_MODEL_MIRROR", "http://127.0.0.1:9/x/\r\nX-Evil: 1")
    assert main(["models", "download", "htdemucs"]) == 1
    one_error_line(capsys.readouterr().err, "control characters")
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_unknown_stem_name_is_a_usage_error_not_an_unexpected_one(tmp_path, capsys):
    sf.write(tmp_path / "tune.wav", np.zeros((4000, 2), np.float32), 8000)
    code = main(["separate", "-m", "classic", "-o", "out", "tune.wav", "--stems", "kazoo"])
    assert code == 1
    line = one_error_line(capsys.readouterr().err, "kazoo", "vocals")
    assert "unexpected" not in line and "KeyError" not in line
