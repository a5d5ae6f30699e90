"""Data-parallel training: two gloo processes on 127.0.0.1 (torchrun) follow the loss
trajectory of one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from stemwright.models.synthetic.test_songs import synth_song
from stemwright.models.training import config as tc
from stemwright.models.training import distributed as ddp
from stemwright.models.training import state as st
from stemwright.models.training import trainer as tr

SR = 8000
NAMES = {"vocals": "Lead Vox", "drums": "Drums", "bass": "Bass DI",
         "electric_guitar": "Dist Gtr", "wind": "Alto Sax", "other": "Piano"}
#: Largest relative difference allowed between the two trajectories, step by step. Only
#: the order of floating-point sums differs (gradients are averaged across processes,
#: the loss is normalised by the global count of present stems); measured: ~2e-7.
TOLERANCE = 1e-5


def make_folder(root: Path, songs: int = 3, seconds: float = 2.0) -> Path:
    for k in range(songs):
        _, stems = synth_song(seconds, SR, seed=k)
        folder = root / f"song{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for stem, audio in stems.items():
            if not (k == 1 and stem == "wind"):  # a song without wind: masked targets
                sf.write(folder / f"{NAMES[stem]}.wav", audio.T, SR, subtype="FLOAT")
    return root


def test_environment_without_torchrun_is_a_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = ddp.env_context()
    assert ctx == ddp.DistContext() and ctx.is_main and not ctx.enabled
    assert ddp.setup(torch.device("cpu")) == ctx
    model = torch.nn.Linear(2, 2)
    assert ddp.wrap(model, ctx, torch.device("cpu")) is model
    assert ddp.broadcast_values([1.0, 2.0], ctx) == [1.0, 2.0]
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ddp.env_context() == ddp.DistContext(rank=3, world_size=4, local_rank=1)


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP on Linux/macOS")
def test_two_gloo_processes_follow_the_single_process_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    folder = make_folder(tmp_path / "songs")
    args = [str(folder), "--model", "wavenet", "--small", "--samplerate", str(SR),
            "--epochs", "2", "--segment", "0.5", "--segments-per-song", "8", "--batch", "4",
            "--lr", "3e-3", "--no-validate", "--no-install", "--workers", "0", "--threads",
            "1", "--log-every", "1", "--cache-dir", str(tmp_path / "decoded")]
    # the single-process reference, in this process
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = tr.train(tc.TrainConfig(
            folders=[str(folder)], out=str(tmp_path / "one"), model="wavenet", small=True,
            samplerate=SR, epochs=2, segment=0.5, segments_per_song=8, batch=4, lr=3e-3,
            validate=False, install=False, log_every=1, cache_dir=str(tmp_path / "decoded")))
    finally:
        torch.set_num_threads(saved)
    assert single.epochs == 2
    env = dict(os.environ, OMP_NUM_THREADS="1",
               GLOO_SOCKET_IFNAME="lo0" if sys.platform == "darwin" else "lo")
    env.pop("WORLD_SIZE", None)
    port = ddp.free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(port),
           "-m", "stemwright.models.cli", "train", *args, "--out", str(tmp_path / "two"),
           "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def losses(run: str) -> list[float]:
        log = st.read_log(tmp_path / run / "log.jsonl")
        return [e["loss"] for e in log if e["event"] == "step"]

    one, two = losses("one"), losses("two")
    start = next(e for e in st.read_log(tmp_path / "two" / "log.jsonl")
                 if e["event"] == "start")
    assert start["world_size"] == 2
    assert len(one) == len(two) == 8
    worst = max(abs(a - b) / abs(a) for a, b in zip(one, two, strict=True))
    assert worst < TOLERANCE, (one, two)
    assert one[-1] < one[0]
