"""The training engine: a tiny model learns on generated multitrack songs, ships to the zoo,
resumes after SIGKILL exactly where an uninterrupted run would be, fine-tunes to new stems."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from demucs.htdemucs import HTDemucs
from safetensors import safe_open

from stemwright.models.architectures import registry as archs
from stemwright.models.cli import commands as cli
from stemwright.models.stems import STEM_IDS
from stemwright.models.synthetic.test_songs import synth_song
from stemwright.models.training import config as tc
from stemwright.models.training import model_init as mi
from stemwright.models.training import state as st
from stemwright.models.training import trainer as tr
from stemwright.models.zoo import catalog as zoo
from stemwright.models.zoo.checkpoint import checkpoint_format, load_checkpoint

SR = 8000
NAMES = {"vocals": "Lead Vox", "drums": "Drums", "bass": "Bass DI",
         "electric_guitar": "Dist Gtr", "wind": "Alto Sax", "other": "Piano"}


def make_folder(root: Path, songs: int = 3, seconds: float = 2.0) -> Path:
    """Per-instrument song folders at 8 kHz; the second song has no wind."""
    for k in range(songs):
        _, stems = synth_song(seconds, SR, seed=k)
        folder = root / f"song{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for stem, audio in stems.items():
            if not (k == 1 and stem == "wind"):
                sf.write(folder / f"{NAMES[stem]}.wav", audio.T, SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("songs") / "songs")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def tiny(folder: Path, out: Path, **overrides) -> tc.TrainConfig:
    cfg = dict(folders=[str(folder)], out=str(out), model="wavenet", small=True,
               samplerate=SR, epochs=3, segment=0.25, segments_per_song=8, batch=4, lr=3e-3,
               valid_fraction=0.34, valid_metric="usdr", log_every=1,
               cache_dir=str(out.parent / "decoded"))
    cfg.update(overrides)
    return tc.TrainConfig(**cfg)


def test_tiny_model_learns_validates_and_appears_in_the_zoo(folder, tmp_path):
    events = []
    cfg = tiny(folder, tmp_path / "run", epochs=4, stems=["vocals", "other"],
               valid_metric="sdr", segment=0.5, valid_segments=2, name="my-tiny")
    result = tr.train(cfg, on_event=events.append)
    assert result.reason == "finished" and result.epochs == 4
    epochs = [e for e in events if e["event"] == "epoch"]
    assert epochs[-1]["train_loss"] < 0.9 * epochs[0]["train_loss"]  # it learns
    assert set(epochs[0]["valid_sdr"]) == {"vocals", "other"}
    assert epochs[0]["valid_metric"] == "sdr"  # BSS Eval over 1 s windows
    steps = [e for e in events if e["event"] == "step"]
    assert all(e["lr"] > 0 and e["segments_per_s"] > 0 for e in steps)
    log = st.read_log(tmp_path / "run" / "log.jsonl")
    assert [e["event"] for e in log][0] == "start" and log[-1]["event"] == "end"
    assert len([e for e in log if e["event"] == "epoch"]) == 4

    model, meta = load_checkpoint(result.best)
    assert meta.stems == ["vocals", "other"] and meta.samplerate == SR
    prov = meta.provenance
    assert prov["data"]["folders"] == [str(folder.resolve())]
    assert prov["data"]["mapping"]["songs/song0"]["Lead Vox.wav"] == "vocals"
    assert prov["hyperparameters"]["lr"] == 3e-3 and prov["hyperparameters"]["epochs"] == 4
    assert "valid_sdr" in prov["metrics"] and prov["code"]["torch"]
    assert prov["init"]["from"] == "scratch"

    assert result.installed == "my-tiny"
    entry = zoo.get_entry("my-tiny")
    assert entry.family == "stemwright" and entry.mapping.produced == ("vocals", "other")
    sep = zoo.load_separator("my-tiny", device="cpu")
    mix, _ = synth_song(1.0, SR, seed=9)
    out = sep.separate(mix, SR)
    assert out.stems["vocals"].shape == mix.shape


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def test_resume_after_sigkill_matches_an_uninterrupted_run(folder, tmp_path):
    run = tmp_path / "killed"
    args = [str(folder), "--model", "wavenet", "--small", "--samplerate", str(SR),
            "--epochs", "30", "--segment", "0.25", "--segments-per-song", "8", "--batch", "4",
            "--lr", "3e-3", "--valid-fraction", "0.34", "--valid-metric", "usdr",
            "--log-every", "1", "--workers", "0", "--threads", "1", "--cache-dir",
            str(tmp_path / "decoded"), "--out", str(run), "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "stemwright.models.cli", "train"]
    proc = subprocess.Popen(cmd + args, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    done_before_kill = -1
    while time.monotonic() < deadline and proc.poll() is None:
        epochs = [e["epoch"] for e in st.read_log(run / "log.jsonl") if e["event"] == "epoch"]
        if epochs and epochs[-1] >= 1:
            proc.send_signal(signal.SIGKILL)
            done_before_kill = epochs[-1]
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert (run / "state.safetensors").exists() and not (run / "best.safetensors.part").exists()

    resumed = subprocess.run(cmd + ["--resume", str(run), "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = st.read_log(run / "log.jsonl")
    restart = next(e for e in log if e["event"] == "resume")
    assert restart["epoch"] >= done_before_kill  # at most the epoch being saved is lost
    assert [e["epoch"] for e in log if e["event"] == "epoch"] == list(range(30))
    assert log[-1]["event"] == "end" and log[-1]["installed"] == "killed"

    reference = tr.train(tiny(folder, tmp_path / "reference", epochs=30, workers=0,
                              install=False))
    assert reference.epochs == 30
    a, b = _tensors(run / "last.safetensors"), _tensors(tmp_path / "reference" /
                                                         "last.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert zoo.load_separator("killed", device="cpu").samplerate == SR


def test_state_is_safetensors_and_json_only(folder, tmp_path):
    tr.train(tiny(folder, tmp_path / "run", epochs=1, ema=0.9))
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["best.safetensors", "config.json", "last.safetensors", "log.jsonl",
                     "state.safetensors"]
    assert checkpoint_format(tmp_path / "run" / "state.safetensors") == "safetensors"
    tensors, meta = st.load_state(tmp_path / "run" / "state.safetensors")
    assert meta["epoch"] == 1 and meta["step"] == 4
    assert any(k.startswith("ema.") for k in tensors)
    assert any(k.startswith("optim.") and k.endswith("exp_avg") for k in tensors)
    # optimizer state round trip
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    flat, rest = st.optimizer_to_state(opt)
    json.dumps(rest)
    other = torch.optim.AdamW(model.parameters(), lr=5.0)
    st.optimizer_from_state(other, flat, json.loads(json.dumps(rest)))
    a, b = opt.state_dict(), other.state_dict()
    assert b["param_groups"][0]["lr"] == 1e-2
    assert all(torch.equal(a["state"][0][k], b["state"][0][k]) for k in a["state"][0])
    with pytest.raises(tc.TrainingError, match="already holds"):
        tr.train(tiny(folder, tmp_path / "run", epochs=1))


def test_pause_and_stop(folder, tmp_path):
    calls = {"n": 0}
    events = []

    def control() -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            return "pause"
        return "stop" if calls["n"] >= 8 else "run"

    result = tr.train(tiny(folder, tmp_path / "run", epochs=5), on_event=events.append,
                      control=control)
    kinds = [e["event"] for e in events]
    assert result.reason == "stopped" and result.installed is None
    assert "paused" in kinds and "resumed" in kinds and "stopped" in kinds
    assert result.epochs == 1  # epoch 0 finished (4 steps); epoch 1 was stopped
    _, meta = st.load_state(tmp_path / "run" / "state.safetensors")
    assert meta["epoch"] == 1
    # the control file works the same way (it is what the desktop app writes); a stale
    # one from an earlier run is removed when a run starts
    control_file = tmp_path / "run" / st.CONTROL_FILE
    control_file.write_text("stop")

    def stop_at_step_6(e: dict) -> None:
        if e["event"] == "step" and e["step"] == 6:
            control_file.write_text("stop")

    again = tr.train(tc.load_run_config(tmp_path / "run"), resume=True,
                     on_event=stop_at_step_6)
    assert again.reason == "stopped" and again.epochs == 1
    assert [e["step"] for e in st.read_log(tmp_path / "run" / "log.jsonl")
            if e["event"] == "step"][-1] == 6


def test_early_stopping(folder, tmp_path, monkeypatch):
    scores = iter([1.0, 2.0, 1.5, 1.0, 0.5, 0.4, 0.3])
    monkeypatch.setattr(tr.Trainer, "_validate", lambda self: {"score": next(scores)})
    result = tr.train(tiny(folder, tmp_path / "run", epochs=7, patience=2))
    assert result.reason == "early stopping" and result.epochs == 4
    assert [h["improved"] for h in result.history] == [True, True, False, False]
    _, meta = load_checkpoint(result.best)
    assert meta.provenance["metrics"]["epoch"] == 1


def test_learning_rate_schedule_and_ema():
    assert tr.lr_factor(0, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert tr.lr_factor(9, 100, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert tr.lr_factor(10, 100, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert tr.lr_factor(100, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert tr.lr_factor(55, 100, 10, "cosine", 0.0) == pytest.approx(0.5)
    assert tr.lr_factor(50, 100, 0, "constant", 0.1) == 1.0
    model = torch.nn.Linear(2, 1)
    ema = tr.EMA(model, 0.75)
    before = ema.model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(4.0)
    ema.update(model)
    assert torch.allclose(ema.model.weight, before + 1.0)


def test_stemwright_checkpoint_to_more_stems_keeps_matching_heads(tmp_path):
    four = ["vocals", "drums", "bass", "other"]
    kwargs = archs.config("wavenet", small=True, sources=four)
    model = archs.build("wavenet", small=True, seed=1, sources=four)
    path = archs.save_model(tmp_path / "four.safetensors", "wavenet", model, kwargs)
    init = mi.init_model(str(path), stems=list(STEM_IDS))
    assert init.sources == list(STEM_IDS) and init.architecture == "wavenet"
    assert init.origin["heads"]["electric_guitar"].startswith("silent")
    x = 0.1 * torch.randn(1, 2, 3000)
    with torch.no_grad():
        old, new = model.eval()(x), init.model.eval()(x)
    for i, stem in enumerate(four):
        assert torch.allclose(new[0, STEM_IDS.index(stem)], old[0, i], atol=1e-6)
    assert new[0, [3, 4]].abs().max() == 0  # guitar and wind start silent, inside other
    assert mi.init_model(str(path)).sources == four  # default: the checkpoint's stems


def test_fine_tune_a_demucs_file_from_six_to_the_stemwright_stems(folder, tmp_path):
    six = ["drums", "bass", "other", "vocals", "guitar", "piano"]
    torch.manual_seed(0)
    model = HTDemucs(**archs.config("htdemucs6", small=True, sources=six)).eval()
    args, kwargs = model._init_args_kwargs
    path = tmp_path / "six.th"
    torch.save({"klass": HTDemucs, "args": args, "kwargs": dict(kwargs),
                "state": model.state_dict()}, path)
    init = mi.init_model(str(path), stems=list(STEM_IDS))
    assert init.architecture == "htdemucs" and init.sources == list(STEM_IDS)
    assert init.origin["heads"]["electric_guitar"] == "guitar"
    assert init.origin["heads"]["wind"] == "0.5 x other + 0.5 x piano"
    x = 0.1 * torch.randn(1, 2, 44100)
    with torch.no_grad():
        old, new = model(x), init.model.eval()(x)
    pick = {s: new[0, STEM_IDS.index(s)] for s in STEM_IDS}
    assert torch.allclose(pick["vocals"], old[0, 3], atol=1e-5)
    assert torch.allclose(pick["electric_guitar"], old[0, 4], atol=1e-5)
    assert torch.allclose(pick["wind"] + pick["other"], old[0, 2] + old[0, 5], atol=1e-3)
    assert mi.init_model(str(path)).sources == ["vocals", "drums", "bass", "electric_guitar",
                                                "other"]
    result = tr.train(tiny(folder, tmp_path / "run", model=str(path), samplerate=None,
                           stems=list(STEM_IDS), epochs=1, segment=1.0, segments_per_song=2,
                           batch=2, max_steps=1, validate=False, install=False))
    loaded, meta = load_checkpoint(result.last)
    assert meta.architecture == "htdemucs" and meta.stems == list(STEM_IDS)
    assert meta.samplerate == 44100 and meta.provenance["init"]["heads"]["other"]


def test_open_unmix_targets_and_demucs_from_scratch(tmp_path):
    from openunmix.model import OpenUnmix

    entry = zoo.ZOO["umxhq"]
    folder = zoo.model_dir("umxhq")
    folder.mkdir(parents=True)
    for k, f in enumerate(entry.files):  # stand-ins with umxhq's layout, tiny hidden size
        torch.manual_seed(k)
        target = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=8, nb_layers=1,
                           max_bin=1487)
        torch.save(target.state_dict(), folder / f.filename)
    init = mi.init_model("umxhq", stems=list(STEM_IDS))
    assert init.architecture == "openunmix6" and init.sources == list(STEM_IDS)
    assert init.origin["heads"]["wind"] == "copy of other (output x 0.333)"
    units = init.model.unmix.target_models
    vocals = torch.load(folder / entry.files[0].filename, weights_only=True)
    other = torch.load(folder / entry.files[3].filename, weights_only=True)
    assert torch.equal(units["vocals"].fc1.weight, vocals["fc1.weight"])
    assert torch.equal(units["wind"].fc1.weight, other["fc1.weight"])
    assert torch.allclose(units["wind"].output_scale * 3, other["output_scale"])
    assert torch.allclose(units["other"].output_scale * 3, other["output_scale"])
    init.model.train()
    with torch.no_grad():
        assert init.model(0.1 * torch.randn(1, 2, 8192)).shape == (1, 6, 2, 8192)
    with pytest.raises(tc.TrainingError, match="not downloaded"):
        mi.init_model("htdemucs")
    scratch = mi.init_model("htdemucs", stems=["vocals", "other"], scratch=True)
    assert scratch.architecture == "htdemucs" and scratch.model.sources == ["vocals", "other"]
    with pytest.raises(tc.TrainingError, match="training-free"):
        mi.init_model("classic")


def test_command_line(folder, tmp_path, capsys):
    assert cli.main(["train"]) == 1  # without --model the default model is fine-tuned
    assert "folders of songs" in capsys.readouterr().err
    assert cli.main(["train", str(folder), "--model", "nope", "--out",
                     str(tmp_path / "x")]) == 1
    assert "neither an architecture" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path / "missing")]) == 1
    assert "not a training run" in capsys.readouterr().err
    assert cli.main(["train", str(folder), "--model", "wavenet", "--stems", "kazoo"]) == 1
    assert "unknown stem" in capsys.readouterr().err
    code = cli.main(["train", str(folder), "--model", "wavenet", "--small", "--samplerate",
                     str(SR), "--epochs", "1", "--segment", "0.25", "--segments-per-song",
                     "4", "--batch", "4", "--out", str(tmp_path / "cli-run"), "--workers",
                     "0", "--valid-metric", "usdr", "--no-install", "--force-stem", "vocals",
                     "--pitch", "1", "--stretch", "0.05", "--loss", "l1+0.1*mrstft",
                     "--ema", "0.99"])
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 1: loss" in out and "finished after 1 epoch (" in out
    assert "valid uSDR vocals=" in out  # named after the metric it shows
    saved = tc.load_run_config(tmp_path / "cli-run")
    assert saved.force_fraction == 0.5 and saved.loss == "l1+0.1*mrstft" and saved.ema == 0.99


def test_training_benchmark_reports_segments_per_second():
    from stemwright.models.cli.train import bench_training_one

    res = bench_training_one("wavenet", "cpu", segment=0.25, batch=2, steps=2, small=True)
    assert res["segments_per_s"] > 0 and res["timed_steps"] == 2
    assert res["data_segments_per_s"] > 0 and res["parameters"] > 0
    assert np.isfinite(res["step_seconds"])


@pytest.mark.parametrize("name", [n for n in archs.ARCHITECTURES if n != "wavenet"])
def test_every_architecture_trains_on_a_generated_folder(name, folder, tmp_path):
    """Each registered architecture (wavenet: above) lowers its loss on generated songs."""
    cfg = tiny(folder, tmp_path / name, model=name, epochs=5, segment=0.5, lr=1e-2,
               segments_per_song=8, stems=["drums", "bass", "other"], swap=False,
               gain=None)
    events = []
    result = tr.train(cfg, on_event=events.append)
    losses = [e["train_loss"] for e in events if e["event"] == "epoch"]
    assert result.reason == "finished" and len(losses) == 5
    assert losses[-1] < losses[0], losses


def test_valid_folder_and_architecture_settings_from_the_command_line(folder, tmp_path,
                                                                      capsys):
    """`--valid-folder` validates on a split folder (as `stemwright synth` writes them);
    `--set` changes the architecture, and a wrong setting is one clear line."""
    valid = make_folder(tmp_path / "data" / "valid", songs=1)
    base = ["train", str(folder), "--model", "masknet", "--small", "--samplerate", str(SR),
            "--epochs", "1", "--segment", "0.25", "--segments-per-song", "2", "--batch",
            "2", "--workers", "0", "--valid-metric", "usdr", "--no-install",
            "--valid-folder", str(valid)]
    assert cli.main([*base, "--out", str(tmp_path / "bad"), "--set", "hidden=nope"]) == 1
    assert "masknet cannot be built" in capsys.readouterr().err
    assert cli.main([*base, "--out", str(tmp_path / "bad2"), "--set", "hidden"]) == 1
    assert "KEY=VALUE" in capsys.readouterr().err
    assert cli.main([*base, "--out", str(tmp_path / "run"), "--set", "hidden=12",
                     "--set", "n_fft=256", "--set", "hop=64", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if line.startswith("{")]
    start = next(r for r in records if r["event"] == "start")
    assert start["valid_songs"] == 1 and start["train_songs"] == 3
    saved = tc.load_run_config(tmp_path / "run")
    assert saved.model_kwargs == {"hidden": 12, "n_fft": 256, "hop": 64}
    assert saved.valid_folders == [str(valid)]
    model, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert model.encode.out_channels == 12 and meta.kwargs["n_fft"] == 256
    provenance = meta.provenance["data"]
    assert provenance["valid_songs"] == ["valid/song0"]
    assert all(k.startswith("songs/") for k in provenance["train_songs"])


def test_stem_weights_scale_each_stems_loss(folder, tmp_path, capsys):
    """--stem-weight multiplies a stem's loss: doubling every stem doubles the first step's
    loss exactly (same seed, data and weights); bad weights are refused by name."""
    def first_loss(out: str, weights: dict[str, float]) -> float:
        events = []
        cfg = tiny(folder, tmp_path / out, stems=["vocals", "other"], epochs=1, max_steps=1,
                   validate=False, install=False, stem_weights=weights)
        tr.train(cfg, on_event=events.append)
        return next(e["loss"] for e in events if e["event"] == "step")

    plain = first_loss("plain", {})
    assert first_loss("double", {"vocals": 2.0, "other": 2.0}) == pytest.approx(2 * plain)
    assert first_loss("vocals-only", {"other": 0.0}) < plain
    base = ["train", str(folder), "--model", "wavenet", "--small", "--samplerate", str(SR),
            "--out", str(tmp_path / "bad"), "--stems", "vocals", "other"]
    assert cli.main([*base, "--stem-weight", "vocals"]) == 1
    assert "STEM=WEIGHT" in capsys.readouterr().err
    assert cli.main([*base, "--stem-weight", "kazoo=2"]) == 1
    assert "unknown stem" in capsys.readouterr().err
    assert cli.main([*base, "--stem-weight", "vocals=-1"]) == 1
    assert "0 or more" in capsys.readouterr().err
    assert cli.main([*base, "--stem-weight", "guitar=2"]) == 1
    assert "no electric_guitar output" in capsys.readouterr().err
