"""`stemwright train` and `stemwright bench --training`.

    stemwright train FOLDER... [--model ARCH|CHECKPOINT|ZOO-MODEL] [--stems ...]
                     [--epochs N] [--segment S] [--batch B] [--lr LR] [--out DIR]
                     [--resume DIR] ...

Without --model the default model (zoo.DEFAULT_MODEL, the built-in stemwright6) is
fine-tuned. Without --out the run goes to runs/<model>-<YYYYmmdd-HHMMSS>/ under the current
folder, printed when the run starts. A run prints one line per epoch (training loss,
validation SDR per stem, throughput) under a progress bar, and leaves its folder as
training.py describes; the finished model is installed in the model zoo under --name
(default: the run folder's name). Data-parallel: start the same command with torchrun and
--out (README, "Training").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..benchmarks.runner import run_child
from ..separation.devices import describe_machine, resolve_device
from ..stems import STEM_IDS
from ..wording import count
from ..zoo import catalog as zoo

# Options whose default lives in TrainConfig; None on the command line means "not given",
# so a resumed run keeps what it was started with.
_RESUMABLE = ("epochs", "workers", "device", "threads", "patience", "log_every")
#: where runs without --out go: RUNS_DIR/<model>-<YYYYmmdd-HHMMSS>
RUNS_DIR = "runs"


def default_run_folder(model: str, root: str | Path = RUNS_DIR,
                       when: time.struct_time | None = None) -> str:
    """A new run folder for training `model` (a name, or a checkpoint file: its name),
    e.g. "runs/stemwright6-20250131-142501"; "-2", "-3"... when that folder exists."""
    label = Path(model).stem if Path(model).expanduser().is_file() else model
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "model"
    base = Path(root) / f"{label}-{time.strftime('%Y%m%d-%H%M%S', when or time.localtime())}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return str(folder)


class _LazyHelp(str):
    """A help text made only when help is shown (`%` is what argparse applies to it), so
    building the parser imports no architecture and reads no model folder."""

    def __new__(cls, make: Callable[[], str]) -> _LazyHelp:
        obj = super().__new__(cls, "(computed when shown)")
        obj.make = make
        return obj

    def __mod__(self, params):  # noqa: ANN001 - str's signature
        return self.make() % params


def model_help() -> str:
    """`--model` help: every registered architecture and every trainable zoo model."""
    from ..architectures import registry as archs

    installed, downloadable = [], []
    for e in zoo.list_models():
        if e.family in ("classic", "roformer", "recipe") or (e.family == "demucs"
                                                             and len(e.files) > 1):
            continue  # training-free, a chain or bag of models, or not trainable yet
        (installed if zoo.is_installed(e.name) else downloadable).append(e.name)
    zoo_text = ", ".join(installed) or "none"
    if downloadable:
        zoo_text += f"; after `stemwright models download`: {', '.join(downloadable)}"
    return (f"what to train (default: {zoo.DEFAULT_MODEL}, the built-in model, fine-tuned): "
            f"an architecture, trained from scratch ({', '.join(archs.ARCHITECTURES)}); a "
            "Stemwright or demucs checkpoint file; or a model of the zoo to fine-tune "
            f"(installed: {zoo_text})").replace("%", "%%")


def parse_stem_weights(items: list[str]) -> dict[str, float]:
    """`--stem-weight STEM=W` items as {stem: weight} (stem names are checked later)."""
    from ..training.config import TrainingError

    out: dict[str, float] = {}
    for item in items:
        stem, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not sep or not stem.strip() or weight is None:
            raise TrainingError(f"--stem-weight takes STEM=WEIGHT, not '{item}'")
        out[stem.strip()] = weight
    return out


def parse_settings(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items as constructor arguments (VALUE as JSON, else text)."""
    from ..training.config import TrainingError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise TrainingError(f"--set takes KEY=VALUE, not '{item}'")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def add_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `train` subcommand on the CLI's subparsers."""
    p = sub.add_parser(
        "train", help="train or fine-tune a model on multitrack folders",
        description="Train or fine-tune a separation model on folders of multitrack songs "
        "(see `stemwright multitrack FOLDER` for how tracks map to stems). The finished "
        "model appears in `stemwright models list`.")
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="folders of songs")
    action = p.add_argument("-m", "--model", metavar="MODEL")
    action.help = _LazyHelp(model_help)
    p.add_argument("--stems", nargs="+", metavar="STEM",
                   help=f"stems to train ({', '.join(STEM_IDS)}); default: the model's")
    p.add_argument("--epochs", type=int)
    p.add_argument("--segment", type=float, metavar="SECONDS", help="training segment "
                   "length (default 6)")
    p.add_argument("--batch", type=int, help="global batch size (default 8)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 3e-4)")
    p.add_argument("-o", "--out", metavar="DIR", help=f"run folder (default: a new "
                   f"{RUNS_DIR}/<model>-<YYYYmmdd-HHMMSS> folder here, printed at the start)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last "
                   "finished epoch")
    p.add_argument("--name", help="name of the finished model in the zoo (default: the run "
                   "folder's name)")
    p.add_argument("--no-install", action="store_true", help="do not add the model to the zoo")
    g = p.add_argument_group("model")
    g.add_argument("--small", action="store_true", help="the architecture's tiny "
                   "configuration (tests, demos)")
    g.add_argument("--scratch", action="store_true", help="with a zoo demucs model: its "
                   "architecture with fresh weights")
    g.add_argument("--samplerate", type=int, help="rate of a model trained from scratch")
    g.add_argument("--set", action="append", metavar="KEY=VALUE", dest="model_set",
                   help="an architecture setting for a model trained from scratch, e.g. "
                        "hidden=256 (repeat; values are read as JSON, else as text)")
    g = p.add_argument_group("data")
    g.add_argument("--segments-per-song", type=int, help="segments per song per epoch "
                   "(default 64)")
    g.add_argument("--valid-fraction", type=float, help="share of songs kept for "
                   "validation (default 0.1)")
    g.add_argument("--valid-song", action="append", metavar="SONG", dest="valid_songs",
                   help="validate on this song (repeat); overrides --valid-fraction")
    g.add_argument("--valid-folder", action="append", metavar="DIR", dest="valid_folders",
                   help="validate on every song of this folder (repeat), e.g. the valid/ "
                        "split of `stemwright synth`; overrides --valid-fraction")
    g.add_argument("--valid-segments", type=int, help="segments per validation song (8)")
    g.add_argument("--valid-metric", choices=("sdr", "usdr"), help="BSS Eval SDR over 1 s "
                   "windows (default) or whole-segment SDR (faster)")
    g.add_argument("--no-validate", action="store_true", help="no validation (the training "
                   "loss picks the best epoch)")
    g.add_argument("--seed", type=int)
    g.add_argument("--workers", type=int, help="data loading processes (default: up to 4)")
    g.add_argument("--cache-dir", metavar="DIR", help="decoded-audio cache (default: "
                   "<cache>/training-cache)")
    g = p.add_argument_group("augmentation")
    g.add_argument("--no-swap", action="store_true", help="no left/right swaps")
    g.add_argument("--gain", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="per-source gain range (default 0.75 1.25)")
    g.add_argument("--no-gain", action="store_true")
    g.add_argument("--remix", type=float, metavar="P", help="probability that a stem "
                   "comes from another song (default 0.5)")
    g.add_argument("--pitch", type=float, metavar="SEMITONES", help="random pitch shift up "
                   "to this many semitones (default off)")
    g.add_argument("--stretch", type=float, metavar="FRACTION", help="random tempo change "
                   "up to this fraction, e.g. 0.1 (default off)")
    g.add_argument("--codec-prob", type=float, metavar="P", help="probability that a "
                   "training mixture (not its stems) goes through MP3 or AAC at 96-256 kb/s "
                   "and back (default 0: off)")
    g.add_argument("--eq", type=float, metavar="DB", help="random EQ per stem: a low "
                   "shelf, a bell and a high shelf, each up to DB up or down (default 0: off)")
    g.add_argument("--eq-prob", type=float, metavar="P", help="share of stems equalised "
                   "with --eq (default 0.5)")
    g.add_argument("--force-stem", metavar="STEM", help="make --force-fraction of the "
                   "segments contain this stem (e.g. vocals)")
    g.add_argument("--force-fraction", type=float, help="default 0.5 with --force-stem")
    g = p.add_argument_group("optimisation")
    g.add_argument("--loss", help="l1 (default), mse, sisdr, sdr, mrstft, or a sum such as "
                   "l1+0.5*mrstft")
    g.add_argument("--stem-weight", action="append", metavar="STEM=W", dest="stem_weight",
                   help="weigh this stem's loss by W (repeat; default 1 each), e.g. "
                   "vocals=2 to favour the vocals")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--warmup", type=float, help="warm-up: share of all steps, or steps")
    g.add_argument("--schedule", choices=("cosine", "constant"))
    g.add_argument("--clip", type=float, help="gradient norm clip (0: off; default 5)")
    g.add_argument("--no-amp", action="store_true", help="no mixed precision on GPU")
    g.add_argument("--ema", type=float, metavar="DECAY", help="EMA of the weights, e.g. "
                   "0.999 (default off)")
    g.add_argument("--patience", type=int, help="early stopping patience in epochs (10)")
    g.add_argument("--max-steps", type=int, help="cap on steps per epoch")
    g = p.add_argument_group("running")
    g.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    g.add_argument("--threads", type=int, help="CPU threads for training")
    g.add_argument("--log-every", type=int, help="steps between log lines (10)")
    g.add_argument("--low-priority", action="store_true", help="run at low CPU priority "
                   "(keeps the desktop app responsive)")
    g.add_argument("--json", action="store_true", help="print the log records as JSON "
                   "lines instead of progress")
    p.set_defaults(func=cmd_train)
    return p


def config_from_args(args: argparse.Namespace):
    """A TrainConfig from parsed arguments (for --resume: the saved one, with only the
    options in _RESUMABLE that were given replaced)."""
    from ..training.config import TrainConfig, TrainingError, load_run_config
    from ..training.distributed import env_context

    if args.resume:
        cfg = load_run_config(args.resume)
        cfg.out = str(args.resume)
        for key in _RESUMABLE:
            if getattr(args, key, None) is not None:
                setattr(cfg, key, getattr(args, key))
        return cfg
    if not args.folders:
        raise TrainingError("give the folders of songs to train on (or --resume DIR)")
    if args.out is None and env_context().world_size > 1:
        raise TrainingError("under torchrun, give the run folder with --out DIR (every "
                            "process must write to the same one)")
    model = args.model or zoo.DEFAULT_MODEL  # resolved like any zoo name (init_model)
    cfg = TrainConfig(folders=list(args.folders), model=model)
    simple = ("stems", "epochs", "segment", "batch", "lr", "out", "name", "samplerate",
              "segments_per_song", "valid_fraction", "valid_songs", "valid_folders",
              "valid_segments",
              "valid_metric", "seed", "workers", "cache_dir", "remix", "pitch", "stretch",
              "force_stem", "force_fraction", "codec_prob", "eq", "eq_prob", "loss", "weight_decay",
              "warmup",
              "schedule",
              "clip", "ema", "patience", "max_steps", "device", "threads", "log_every")
    for key in simple:
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    cfg.stem_weights = parse_stem_weights(args.stem_weight or [])
    cfg.small, cfg.scratch = args.small, args.scratch
    cfg.model_kwargs = parse_settings(args.model_set or [])
    cfg.install = not args.no_install
    cfg.validate = not args.no_validate
    cfg.swap = not args.no_swap
    cfg.amp = not args.no_amp
    if args.gain is not None:
        cfg.gain = list(args.gain)
    if args.no_gain:
        cfg.gain = None
    if cfg.force_stem and args.force_fraction is None:
        cfg.force_fraction = 0.5
    if args.workers is None:
        cfg.workers = max(0, min(4, (os.cpu_count() or 1) - 1))
    if args.out is None:
        cfg.out = default_run_folder(model)
    return cfg


class _Printer:
    """Progress for a terminal: a bar per epoch and one summary line per epoch."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, e: dict[str, Any]) -> None:
        from tqdm import tqdm

        kind = e.get("event")
        if kind == "data" and e["done"] == e["total"]:
            print(f"data: {count(e['total'], 'song')} ready", file=sys.stderr)
        elif kind in ("start", "resume"):
            what = "resuming at epoch" if kind == "resume" else "training from epoch"
            print(f"{what} {e['epoch'] + 1}/{e['epochs']}: {e['architecture']} "
                  f"({e['parameters'] / 1e6:.2f} M parameters) on {e['device']}"
                  f"{' x' + str(e['world_size']) if e['world_size'] > 1 else ''}, "
                  f"stem{'s' * (len(e['stems']) != 1)} {', '.join(e['stems'])}; "
                  f"{count(e['train_songs'], 'training song')}, "
                  f"{count(e['valid_songs'], 'validation song')}, "
                  f"{count(e['steps_per_epoch'], 'step')} per epoch")
            for problem in e.get("problems") or []:
                print(f"note: {problem}", file=sys.stderr)
        elif kind == "step":
            if self.bar is None:
                self.bar = tqdm(total=e["batches"], desc=f"epoch {e['epoch'] + 1}",
                                leave=False, dynamic_ncols=True, disable=None)
            self.bar.n = e["batch"]
            self.bar.set_postfix(loss=f"{e['loss']:.4f}", seg_s=f"{e['segments_per_s']:.1f}",
                                 refresh=True)
        elif kind == "epoch":
            self.close()
            sdr = e.get("valid_sdr") or {}
            valid = " ".join(f"{s}={v:.2f}" for s, v in sdr.items() if v is not None)
            metric = "uSDR" if e.get("valid_metric") == "usdr" else "SDR"  # what valid_sdr holds
            print(f"epoch {e['epoch'] + 1}: loss {e['train_loss']:.4f}"
                  + (f", valid {metric} {valid}" if valid else "")
                  + f", {e['segments_per_s']:.1f} segments/s"
                  + (" (best)" if e.get("improved") else ""), flush=True)
        elif kind in ("end", "stopped"):
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.distributed import env_context
    from ..training.trainer import train

    cfg = config_from_args(args)
    if env_context().is_main and not args.resume:
        print(f"run folder: {cfg.out}" + (f" (the finished model will be '{cfg.model_name()}' "
                                          "in `stemwright models list`)" if cfg.install
                                          else ""),
              file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.low_priority and hasattr(os, "nice"):
        os.nice(10)
    stop = {"now": False}

    def on_term(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
        stop["now"] = True

    main = env_context().is_main
    if args.json:
        def show(e: dict[str, Any]) -> None:
            print(json.dumps(e), flush=True)
    else:
        show = _Printer()
    # SIGTERM (the desktop app's Stop when the control file is not read): stop after the
    # current step, keeping the last finished epoch
    previous = None
    if env_context().world_size == 1:
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            previous = signal.signal(signal.SIGTERM, on_term)
    try:
        result = train(cfg, resume=bool(args.resume), on_event=show if main else None,
                       control=lambda: "stop" if stop["now"] else "run")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if main and not args.json:
        best = f"{result.best_score:.2f}" if result.best_score is not None else "-"
        print(f"{result.reason} after {count(result.epochs, 'epoch')} (best score {best}); "
              f"run in {result.out}" + (f"; installed as model '{result.installed}'"
                                        if result.installed else ""))
    return 0 if result.reason != "stopped" else 130


# -- bench --training ---------------------------------------------------------------------

#: Segment seconds per architecture for `bench --training` (full configurations): what the
#: literature trains on, shortened where a batch of 2 would not fit in about 8 GB of CPU
#: memory (Conv-TasNet's 40 TCN blocks at 44.1 kHz; the conditioned one runs them for all
#: six instruments at once).
BENCH_SEGMENT = {"wavenet": 1.0, "waveunet": 4.0, "convtasnet": 1.0, "condtasnet": 0.25,
                 "openunmix6": 6.0, "htdemucs6": 4.0}

def _bench_folder(root: Path, samplerate: int, seconds: float, songs: int = 2) -> Path:
    import soundfile as sf

    from ..synthetic.test_songs import synth_song

    names = {"vocals": "Lead Vox", "drums": "Drums", "bass": "Bass", "electric_guitar":
             "Dist Gtr", "wind": "Sax", "other": "Piano"}
    for k in range(songs):
        _, stems = synth_song(seconds, samplerate, seed=100 + k)
        folder = root / f"song{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for stem, audio in stems.items():
            sf.write(folder / f"{names[stem]}.wav", audio.T, samplerate, subtype="FLOAT")
    return root


def bench_training_one(name: str, device: str = "cpu", segment: float = 4.0, batch: int = 4,
                       steps: int = 3, small: bool = False, workers: int = 0) -> dict:
    """Train architecture `name` for 1 + `steps` steps on generated songs: segments per
    second at the median timed step (data loading included; the first step is not timed),
    and of the data pipeline alone (one process)."""
    import torch

    from ..architectures import registry as archs
    from ..training.config import TrainConfig
    from ..training.dataset import SegmentDataset, prepare_songs
    from ..training.trainer import train

    a = archs.get_architecture(name)
    with tempfile.TemporaryDirectory(prefix="stemwright-bench-") as tmp:
        root = Path(tmp)
        _bench_folder(root / "songs", a.samplerate, max(2 * segment, 4.0))
        stamps: list[float] = []
        info: dict[str, Any] = {}

        def on_event(e: dict[str, Any]) -> None:
            if e.get("event") == "step":
                stamps.append(time.perf_counter())
            elif e.get("event") == "start":
                info.update(parameters=e["parameters"], samplerate=e["samplerate"])

        cfg = TrainConfig(folders=[str(root / "songs")], out=str(root / "run"), model=name,
                          small=small, epochs=1, segment=segment, batch=batch,
                          segments_per_song=batch * (steps + 1), max_steps=steps + 1,
                          validate=False, install=False, log_every=1, workers=workers,
                          cache_dir=str(root / "cache"), device=device, amp=True)
        train(cfg, on_event=on_event)
        steps_s = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        median = steps_s[len(steps_s) // 2] if steps_s else float("nan")
        songs, _ = prepare_songs([root / "songs"], a.samplerate, root / "cache")
        data = SegmentDataset(songs, list(a.stems), int(segment * a.samplerate), 64)
        t0 = time.perf_counter()
        for i in range(8):
            data[i]
        data_rate = 8 / (time.perf_counter() - t0)
    return {"architecture": name, "config": "small" if small else "full",
            "parameters": info.get("parameters"), "samplerate": info.get("samplerate"),
            "segment_seconds": segment, "batch": batch, "device": device,
            "torch_threads": torch.get_num_threads(), "timed_steps": len(stamps) - 1,
            "step_seconds": round(median, 3),  # median over the timed steps
            "segments_per_s": round(batch / median, 3),
            "data_segments_per_s": round(data_rate, 1)}


def run_training_benchmark(names: list[str] | None = None, device: str = "auto",
                           segment: float | None = None, batch: int | None = None,
                           small: bool = False, steps: int = 3) -> dict:
    """`stemwright bench --training`: training throughput of each architecture, each in
    its own subprocess; {"machine": ..., "results": [...]}."""
    from ..architectures import registry as archs

    dev = resolve_device(device)
    todo = names or list(archs.ARCHITECTURES)
    for n in todo:
        archs.get_architecture(n)
    results = []
    for n in todo:
        seconds = segment or (1.0 if small else BENCH_SEGMENT.get(n, 4.0))
        cmd = [sys.executable, "-m", "stemwright.models.cli.train", "--bench-one", n,
               "--device", str(dev), "--segment", str(seconds),
               "--batch", str(batch or (4 if small else 2)), "--steps", str(steps)]
        if small:
            cmd.append("--small")
        figures, error = run_child(cmd)
        if error is not None:
            results.append({"architecture": n, "error": error})
            continue
        results.append(figures)
    return {"machine": describe_machine(dev), "results": results}


def cmd_bench_training(args: argparse.Namespace) -> int:
    report = run_training_benchmark(args.models or None, args.device, args.segment,
                                    getattr(args, "batch", None), getattr(args, "small", False))
    print(json.dumps(report, indent=2))
    return 0


def _main() -> int:
    parser = argparse.ArgumentParser(prog="stemwright.models.cli.train")
    parser.add_argument("--bench-one", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--segment", type=float, default=4.0)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    print(json.dumps(bench_training_one(args.bench_one, args.device, args.segment, args.batch,
                                        args.steps, args.small)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
