"""The training engine: fine-tune or train any registered architecture on multitrack folders.

`train(TrainConfig(...))` runs the whole thing in a run folder:

    run/config.json           the configuration (a resumed run reads it back)
    run/log.jsonl             one JSON object per line: start, step, epoch, end events
    run/best.safetensors      Stemwright checkpoint with the best validation score
    run/last.safetensors      Stemwright checkpoint after the last finished epoch
    run/state.safetensors     everything needed to resume (weights, EMA, optimizer, RNG,
                              counters): tensors in safetensors, the rest as JSON metadata
    run/control               optional, written by the GUI while a run goes: "pause",
                              "run" or "stop" (removed when a run starts)

Every file is written to a temporary name, synced and renamed, so a run killed at any
moment (even with SIGKILL) leaves the state of its last finished epoch, and
`train(cfg, resume=True)` continues from there with the same data order and RNG. Nothing
is pickled: optimizer state is flattened into safetensors + JSON too.

The model comes from `init_model`: an architecture from `architectures.ARCHITECTURES`
trained from scratch, a Stemwright checkpoint, an official demucs file, or an installed zoo
model (htdemucs, htdemucs_6s, umxhq, umxl, user models). When its stems differ from the
ones asked for, `adapt_heads` keeps the output heads that match (guitar -> electric
guitar, piano merged into other, ...) and starts new stems as a share of "other".

The loop: AdamW, linear warm-up then cosine decay, gradient clipping, mixed precision on
CUDA for waveform models (bf16, or fp16 with loss scaling; TF32 for the spectrogram and
hybrid ones, whose complex spectrograms need float32), optional EMA of the weights, masked
losses (see losses.py), validation every epoch with BSS Eval SDR (metrics.bss_eval, museval's
algorithm) per stem, early stopping with patience. Data-parallel across processes when
started by torchrun (see distributed.py). A finished model is installed in the model zoo.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..errors import ModelError, StemwrightError
from ..evaluation.metrics import bss_eval, sdr
from ..separation.devices import resolve_device
from ..stems import STEM_IDS, get_stem
from ..zoo.checkpoint import (
    CheckpointMeta,
    _tensors_for_saving,
    checkpoint_format,
    load_checkpoint,
    load_demucs_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from . import distributed as ddp
from .dataset import (
    Augment,
    EpochSampler,
    SegmentDataset,
    ValidationSet,
    data_summary,
    make_loader,
    prepare_songs,
    song_folder_names,
    split_songs,
)
from .losses import Loss, masked_sum

STATE_FORMAT = "stemwright-train-state"
STATE_VERSION = 1
CONTROL_FILE = "control"
LOG_FILE = "log.jsonl"
CONFIG_FILE = "config.json"


class TrainingError(StemwrightError):
    """A training run cannot start or continue."""


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Everything a run depends on (saved as config.json; see `stemwright train -h`)."""

    folders: list[str] = field(default_factory=list)
    out: str = "training-run"
    model: str = "waveunet"  # architecture, checkpoint file or zoo model
    stems: list[str] | None = None  # default: the model's (canonical) stems
    small: bool = False  # the architecture's tiny configuration (tests, demos)
    scratch: bool = False  # a zoo demucs model's architecture with fresh weights
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    samplerate: int | None = None  # only for models trained from scratch
    epochs: int = 50
    segment: float = 6.0  # seconds
    segments_per_song: int = 64
    batch: int = 8  # global batch (all processes together)
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: float = 0.02  # share of all steps (<= 1) or a number of steps (> 1)
    schedule: str = "cosine"  # or "constant"
    min_lr: float = 0.05  # cosine decays to this share of lr
    clip: float = 5.0  # gradient norm clip (0: off)
    amp: bool = True  # mixed precision on CUDA
    ema: float = 0.0  # EMA decay of the weights, e.g. 0.999 (0: off)
    loss: str = "l1"
    stem_weights: dict[str, float] = field(default_factory=dict)  # loss weight per stem (1)
    patience: int = 10  # epochs without a better validation score before stopping
    valid_fraction: float = 0.1
    valid_songs: list[str] = field(default_factory=list)
    valid_folders: list[str] = field(default_factory=list)  # all their songs validate
    valid_segments: int = 8  # per validation song
    valid_metric: str = "sdr"  # "sdr" (BSS Eval, 1 s windows) or "usdr" (whole segment)
    seed: int = 0
    workers: int = 0
    swap: bool = True
    gain: list[float] | None = field(default_factory=lambda: [0.75, 1.25])
    remix: float = 0.5
    pitch: float = 0.0
    stretch: float = 0.0
    repitch_prob: float = 0.2
    force_stem: str | None = None
    force_fraction: float = 0.0
    device: str = "auto"
    threads: int | None = None
    cache_dir: str | None = None
    name: str | None = None  # zoo name of the finished model (default: the run folder's)
    install: bool = True
    log_every: int = 10
    max_steps: int | None = None  # cap on steps per epoch
    validate: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def augment(self) -> Augment:
        return Augment(swap=self.swap, gain=tuple(self.gain) if self.gain else None,
                       remix=self.remix, pitch=self.pitch, stretch=self.stretch,
                       repitch_prob=self.repitch_prob)

    def model_name(self) -> str:
        name = self.name or Path(self.out).resolve().name
        return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "my-model"


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings that cannot work, with a message naming the option."""
    problems = []
    if not cfg.folders:
        problems.append("give at least one folder of multitrack songs")
    if cfg.epochs < 1:
        problems.append("--epochs must be at least 1")
    if cfg.segment <= 0:
        problems.append("--segment must be positive")
    if cfg.batch < 1 or cfg.segments_per_song < 1:
        problems.append("--batch and --segments-per-song must be at least 1")
    if cfg.lr <= 0:
        problems.append("--lr must be positive")
    if not 0.0 <= cfg.ema < 1.0:
        problems.append("--ema must be in [0, 1)")
    if cfg.schedule not in ("cosine", "constant"):
        problems.append("--schedule must be cosine or constant")
    if cfg.valid_metric not in ("sdr", "usdr"):
        problems.append("--valid-metric must be sdr or usdr")
    if not 0.0 <= cfg.force_fraction <= 1.0 or not 0.0 <= cfg.remix <= 1.0:
        problems.append("--force-fraction and --remix must be between 0 and 1")
    if cfg.gain and (len(cfg.gain) != 2 or not 0 < cfg.gain[0] <= cfg.gain[1]):
        problems.append("--gain takes two positive numbers LOW HIGH")
    try:
        Loss(cfg.loss)
    except ValueError as exc:
        problems.append(str(exc))
    for stem, weight in cfg.stem_weights.items():
        if not weight >= 0:
            problems.append(f"--stem-weight {stem}: the weight must be 0 or more")
    for stem in [*(cfg.stems or []), *([cfg.force_stem] if cfg.force_stem else []),
                 *cfg.stem_weights]:
        try:
            get_stem(stem)
        except KeyError as exc:
            problems.append(str(exc).strip("'\""))
    if problems:
        raise TrainingError("; ".join(problems))


# --------------------------------------------------------------------------------------
# Models: from scratch, from checkpoints, new stem sets
# --------------------------------------------------------------------------------------

@dataclass
class ModelInit:
    """A model ready to train and how to save it."""

    model: nn.Module
    architecture: str  # checkpoint architecture name
    kwargs: dict[str, Any]
    sources: list[str]  # canonical stem ids, the model's output order
    origin: dict[str, Any]  # provenance: where the weights came from

    @property
    def samplerate(self) -> int:
        return int(getattr(self.model, "samplerate", 44100))


def _canonical(sources: Sequence[str]) -> dict[str, str]:
    """{native source name: canonical stem id} ("guitar" -> electric_guitar, "piano" ->
    other), as the zoo maps them."""
    from ..stems import mapping_for

    mapping = mapping_for(list(sources))
    return {s: mapping.target_of(s) for s in sources}


def _wanted(stems: Sequence[str] | None, native: Sequence[str]) -> list[str]:
    if stems:
        out = [get_stem(s).id for s in stems]
    else:
        produced = set(_canonical(native).values())
        out = [s for s in STEM_IDS if s in produced]
    if len(set(out)) != len(out):
        raise TrainingError(f"a stem is named twice in {list(stems or out)}")
    return out


def init_model(spec: str, stems: Sequence[str] | None = None, small: bool = False,
               scratch: bool = False, kwargs: dict[str, Any] | None = None,
               samplerate: int | None = None, seed: int = 0) -> ModelInit:
    """Build the model to train from `spec`: an architecture name (fresh weights), a
    Stemwright checkpoint or demucs file, or an installed zoo model. `stems` (canonical
    ids) is the stem set to train; other heads are adapted (`adapt_heads`)."""
    from ..architectures import registry as archs
    from ..zoo import catalog as zoo

    overrides = dict(kwargs or {})
    if samplerate:
        overrides["samplerate"] = int(samplerate)
    path = Path(spec).expanduser()
    torch.manual_seed(seed)
    if spec in archs.ARCHITECTURES:
        a = archs.get_architecture(spec)
        sources = _wanted(stems, a.stems)
        cfg = archs.config(spec, small, **overrides, sources=sources)
        try:
            model = a.cls(**cfg)
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"{spec} cannot be built with these settings ({exc})") from None
        return ModelInit(model, a.arch, cfg, sources, {"from": "scratch", "architecture": spec,
                                                         "small": small})
    if path.is_file():
        return _from_file(path, stems, overrides, {"from": "file", "path": str(path.resolve())})
    try:
        entry = zoo.get_entry(spec)
    except ModelError:
        raise TrainingError(f"--model '{spec}' is neither an architecture "
                            f"({', '.join(archs.ARCHITECTURES)}), a checkpoint file nor a "
                            "model of the zoo") from None
    origin = {"from": "zoo", "model": spec}
    if entry.family == "classic":
        raise TrainingError(f"'{spec}' is a training-free separator; pick an architecture "
                            f"({', '.join(archs.ARCHITECTURES)}) or a neural model")
    if entry.family == "demucs" and scratch:
        from demucs.htdemucs import HTDemucs

        from ..separation.demucs_backend import PUBLISHED_DEMUCS as PUBLISHED
        mapping, cfg = PUBLISHED[spec]
        sources = _wanted(stems, mapping.native)
        cfg = dict(cfg, **overrides, sources=sources)
        return ModelInit(HTDemucs(**cfg), "htdemucs", cfg, sources,
                         {"from": "scratch", "architecture": spec})
    if not zoo.is_installed(spec):
        raise TrainingError(f"model '{spec}' is not downloaded; run `stemwright models "
                            f"download {spec}` first (or train it from scratch with --scratch)")
    folder = zoo.model_dir(spec)
    if entry.family == "demucs":
        if len(entry.files) > 1:
            raise TrainingError(f"'{spec}' is a bag of {len(entry.files)} models; fine-tune "
                                "htdemucs instead")
        return _from_file(folder / entry.files[0].filename, stems, overrides, origin)
    if entry.family == "openunmix":
        return _from_openunmix(spec, folder, entry, stems, origin)
    return _from_file(zoo.checkpoint_path(spec), stems, overrides, origin)


def _from_file(path: Path, stems: Sequence[str] | None, overrides: dict[str, Any],
               origin: dict[str, Any]) -> ModelInit:

    fmt = checkpoint_format(path)
    if fmt == "stemwright":
        model, meta = load_checkpoint(path)
        arch, kwargs, native = meta.architecture, dict(meta.kwargs), list(meta.stems)
    elif fmt in ("torch", "demucs-safetensors"):
        model = load_demucs_checkpoint(path)
        args, kwargs = getattr(model, "_init_args_kwargs", ((), {}))
        if args:
            raise TrainingError(f"{path.name}: positional constructor arguments are not "
                                "supported")
        arch, kwargs, native = type(model).__name__.lower(), dict(kwargs), list(model.sources)
    else:
        raise TrainingError(f"{path.name} is neither a Stemwright checkpoint nor a demucs "
                            "model file")
    if overrides.get("samplerate") and overrides["samplerate"] != getattr(model, "samplerate",
                                                                          None):
        raise TrainingError(f"{path.name} works at {model.samplerate} Hz; the sample rate "
                            "of a trained model cannot be changed")
    sources = _wanted(stems, native)
    origin = dict(origin, architecture=arch, stems=native)
    if sources == native:
        return ModelInit(model.train(), arch, kwargs, sources, origin)
    kwargs = dict(kwargs, sources=sources)
    new = type(model)(**kwargs)
    origin["heads"] = adapt_heads(model, native, new, sources, kwargs)
    return ModelInit(new.train(), arch, kwargs, sources, origin)


def _from_openunmix(name: str, folder: Path, entry, stems: Sequence[str] | None,
                    origin: dict[str, Any]) -> ModelInit:
    """Open-Unmix targets (one network per stem) as an `OpenUnmixStems` model."""
    from ..architectures.registry import OpenUnmixStems
    from ..zoo.checkpoint import load_openunmix_target

    targets = {f.target: load_openunmix_target(folder / f.filename) for f in entry.files}
    first = next(iter(targets.values()))
    kwargs = dict(sources=list(targets), hidden_size=int(first.hidden_size),
                  nb_layers=int(first.lstm.num_layers), n_fft=4096, n_hop=1024,
                  bandwidth=16000.0, samplerate=int(entry.samplerate))
    model = OpenUnmixStems(**kwargs)
    for src, target in targets.items():
        mine = model.unmix.target_models[src]
        if mine.fc1.weight.shape != target.fc1.weight.shape:
            raise TrainingError(f"'{name}': its networks do not fit Open-Unmix's standard "
                                "configuration")
        mine.load_state_dict(target.state_dict())
    native = list(targets)
    sources = _wanted(stems, native)
    origin = dict(origin, architecture="openunmix6", stems=native)
    if sources == native:
        return ModelInit(model.train(), "openunmix6", kwargs, sources, origin)
    kwargs = dict(kwargs, sources=sources)
    new = OpenUnmixStems(**kwargs)
    origin["heads"] = adapt_heads(model, native, new, sources, kwargs)
    return ModelInit(new.train(), "openunmix6", kwargs, sources, origin)


def head_plan(old: Sequence[str], new: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
    """{new source: [(old source, weight)]}: which old outputs each new output starts as.

    A new stem takes the old sources that map onto it (several are summed: htdemucs_6s'
    piano and other -> other); old sources whose stem the new set lacks go into "other";
    new stems with no old source start as an equal share of "other" (other + the new
    stems then still add up to the old "other")."""
    canon = _canonical(old)
    plan: dict[str, list[tuple[str, float]]] = {}
    for n in new:
        same = [o for o in old if o == n]
        plan[n] = [(o, 1.0) for o in (same or [o for o in old if canon[o] == n])]
    used = {o for parts in plan.values() for o, _ in parts}
    if "other" in plan:
        plan["other"] += [(o, 1.0) for o in old if o not in used]
    borrowers = [n for n in new if not plan[n]]
    if borrowers and plan.get("other"):
        share = 1.0 / (len(borrowers) + 1)
        base = plan["other"]
        for n in [*borrowers, "other"]:
            plan[n] = [(o, w * share) for o, w in base]
    return plan


def _linear_heads(model: nn.Module) -> bool:
    """Whether outputs are linear in the last layer (so heads can be summed and split)."""
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    from ..architectures.wavenet import WaveNet
    from ..architectures.waveunet import WaveUNet
    return isinstance(model, WaveNet | WaveUNet | HTDemucs | HDemucs | Demucs)


def _amp_safe(model: nn.Module) -> bool:
    """Whether autocast suits the model: waveform models yes; models that turn their
    output back from a complex spectrogram (demucs' hybrids, Open-Unmix) need float32."""
    from ..architectures.convtasnet import ConditionedTasNet, ConvTasNet
    from ..architectures.wavenet import WaveNet
    from ..architectures.waveunet import WaveUNet
    return isinstance(model, WaveNet | WaveUNet | ConvTasNet | ConditionedTasNet)


def _heads(model: nn.Module, sources: Sequence[str]) -> list[str]:
    """The sources that have output rows (difference-output models derive the last)."""
    return list(sources)[:int(getattr(model, "n_predicted", len(sources)))]


def _probe_states(cls: type[nn.Module], kwargs: dict[str, Any]
                  ) -> tuple[dict, dict, int, int]:
    """State dicts of `cls(**kwargs)` with two and three sources, and their head counts
    (to find the tensors that hold one block per output head)."""
    out = []
    for n in (2, 3):
        kw = dict(kwargs, sources=list(STEM_IDS[:n]))
        try:
            with torch.device("meta"):
                probe = cls(**kw)
        except Exception:  # noqa: BLE001 - some constructors need real tensors
            probe = cls(**kw)
        out.append((probe.state_dict(), len(_heads(probe, kw["sources"]))))
    (a, ha), (b, hb) = out
    return a, b, ha, hb


@torch.no_grad()
def adapt_heads(old: nn.Module, old_sources: Sequence[str], new: nn.Module,
                new_sources: Sequence[str], kwargs: dict[str, Any]) -> dict[str, str]:
    """Copy `old`'s weights into `new` (same architecture, other stems), keeping matching
    output heads and initialising new ones by `head_plan`; `kwargs` built `new`. Returns
    {new source: how it was initialised} for the provenance.

    Tensors whose size depends on the number of sources are found by building the class
    with two and three sources; along that axis they hold one block per output head.
    Per-stem sub-networks (Open-Unmix) are copied whole; for them and for non-linear heads
    (masks, embeddings) a new stem copies "other" instead of sharing it.
    """
    plan = head_plan(old_sources, new_sources)
    linear = _linear_heads(new)
    new_state = new.state_dict()
    old_state = old.state_dict()
    old_heads, new_heads = _heads(old, old_sources), _heads(new, new_sources)
    implicit_other = "other" in new_sources and "other" not in new_heads
    full = plan
    if not linear:  # a copy of one source, the same name first
        plan = {n: [(parts[0][0], 1.0)] if parts else [] for n, parts in plan.items()}
    if implicit_other:  # other is mix minus the rest: new stems start silent
        for n in new_sources:
            if n != "other" and all(o not in old_heads for o, _ in plan[n]):
                plan[n] = []
    two, three, h2, h3 = _probe_states(type(new), kwargs)
    per_source = [k for k in new_state if k not in two or k not in three]
    for key, value in new_state.items():
        if key in per_source:
            continue
        if key not in two or two[key].shape == three[key].shape:
            if key in old_state and old_state[key].shape == value.shape:
                value.copy_(old_state[key])
            continue
        axis = next(i for i, (x, y) in enumerate(zip(two[key].shape, three[key].shape,
                                                     strict=True)) if x != y)
        k = (three[key].shape[axis] - two[key].shape[axis]) // (h3 - h2)
        src = old_state[key].movedim(axis, 0).reshape(len(old_heads), k, -1)
        dst = value.movedim(axis, 0).reshape(len(new_heads), k, -1).clone()
        for j, n in enumerate(new_heads):
            parts = [(old_heads.index(o), w) for o, w in plan[n] if o in old_heads]
            if parts:
                dst[j] = sum(w * src[i] for i, w in parts)
            elif not plan[n]:
                dst[j] = 0.0 if implicit_other else dst[j]
        shape = list(value.movedim(axis, 0).shape)
        value.copy_(dst.reshape(shape).movedim(0, axis))
    if per_source:
        _copy_per_source(old_state, new_state, per_source, old_sources, new_sources, plan,
                         full)
    new.load_state_dict(new_state)
    report: dict[str, str] = {}
    for n in new_sources:
        parts = plan[n]
        if n not in new_heads:
            report[n] = "the mix minus the other stems"
        elif not parts:
            report[n] = "silent at first (inside other)" if implicit_other else "new weights"
        elif linear:
            report[n] = " + ".join(o if w == 1 else f"{w:.3g} x {o}" for o, w in parts)
        else:
            share = full[n][0][1] if per_source and full.get(n) else 1.0
            report[n] = parts[0][0] if parts[0][0] == n else f"copy of {parts[0][0]}"
            report[n] += f" (output x {share:.3g})" if share != 1.0 else ""
    return report


def _copy_per_source(old_state: dict, new_state: dict, keys: list[str],
                     old_sources: Sequence[str], new_sources: Sequence[str],
                     plan: dict[str, list[tuple[str, float]]],
                     full: dict[str, list[tuple[str, float]]]) -> None:
    """Per-stem sub-networks: each new stem's copied from its planned old stem; an
    Open-Unmix output scale is shared the way `head_plan` shares "other"."""
    for key in keys:
        parts = key.split(".")
        hit = [i for i, p in enumerate(parts) if p in new_sources]
        if not hit:
            continue
        i = hit[-1]
        n = parts[i]
        if not plan.get(n):
            continue
        o = plan[n][0][0]
        old_key = ".".join([*parts[:i], o, *parts[i + 1:]])
        if old_key not in old_state or old_state[old_key].shape != new_state[key].shape:
            continue
        value = old_state[old_key].clone()
        share = full[n][0][1] if full.get(n) else 1.0
        if share != 1.0 and parts[-1] in ("output_scale", "output_mean"):
            value = value * share  # relu(share * x) = share * relu(x): outputs are shared
        new_state[key].copy_(value)


# --------------------------------------------------------------------------------------
# EMA, learning rate
# --------------------------------------------------------------------------------------

class EMA:
    """Exponential moving average of a model's weights (buffers copied as they are)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        mine = list(self.model.parameters())
        theirs = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)
        for b, src in zip(self.model.buffers(), model.buffers(), strict=True):
            b.copy_(src)
        if hasattr(model, "segment"):
            self.model.segment = model.segment


def lr_factor(step: int, total: int, warmup: int, schedule: str, floor: float) -> float:
    """Multiplier of the base learning rate at `step`: linear warm-up over `warmup`
    steps, then constant or cosine down to `floor` at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------------------
# Files: atomic writes, resumable state, JSON lines
# --------------------------------------------------------------------------------------

def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """JSON file written atomically."""
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str),
                                                   encoding="utf-8"))


def save_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Resumable state: named tensors in safetensors, `meta` as JSON metadata, atomically."""
    clean = _tensors_for_saving(tensors)
    body = json.dumps(dict(meta, format=STATE_FORMAT, version=STATE_VERSION))
    _atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata={"state": body}))


def load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, meta) of a state file written by `save_state`."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = json.loads((f.metadata() or {})["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise TrainingError(f"{path}: the training state cannot be read ({exc})") from exc
    if meta.get("format") != STATE_FORMAT or int(meta.get("version", 0)) > STATE_VERSION:
        raise TrainingError(f"{path} is not a training state this Stemwright can resume")
    return tensors, meta


def optimizer_to_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state as (tensors "optim.<param>.<name>", JSON-able rest)."""
    sd = opt.state_dict()
    tensors, rest = {}, {}
    for idx, entry in sd["state"].items():
        plain = {}
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value
            else:
                plain[name] = value
        rest[str(idx)] = plain
    return tensors, {"state": rest, "param_groups": sd["param_groups"]}


def optimizer_from_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta["state"].items()}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


class JsonLog:
    """Append-only JSON-lines log; `size` is the byte offset after the last line."""

    def __init__(self, path: Path, keep_bytes: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_bytes is not None and path.exists():
            with open(path, "rb+") as f:
                f.truncate(min(keep_bytes, path.stat().st_size))
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any], sync: bool = False) -> None:
        self.file.write(json.dumps(record, default=_json_default) + "\n")
        self.file.flush()
        if sync:
            os.fsync(self.file.fileno())

    @property
    def size(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete record of a run's log (a torn last line is skipped)."""
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def _clean(x: Any) -> Any:
    """NaN/inf -> None, numpy -> Python, recursively (for JSON)."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def code_version() -> dict[str, str]:
    """Stemwright, torch and demucs versions and the git commit of the code, if known."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__}
    for pkg in ("stemwright", "demucs", "openunmix"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        here = Path(__file__).resolve().parent
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5)
        if proc.returncode == 0:
            out["git"] = proc.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=here, capture_output=True, text=True, timeout=5)
            out["git_dirty"] = str(bool(dirty.stdout.strip())).lower()
    return out


# --------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    out: Path
    best: Path | None
    last: Path | None
    epochs: int  # epochs finished in total
    best_score: float | None
    reason: str  # "finished", "early stopping", "stopped", "max epochs"
    installed: str | None = None  # zoo name
    history: list[dict[str, Any]] = field(default_factory=list)


def load_run_config(folder: str | os.PathLike[str]) -> TrainConfig:
    """The configuration saved in a run folder (for --resume)."""
    path = Path(folder) / CONFIG_FILE
    try:
        return TrainConfig.from_json(json.loads(path.read_text(encoding="utf-8"))["config"])
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"{folder}: not a training run folder ({exc})") from exc


class Trainer:
    """One training run; see the module docstring. `on_event(record)` receives every log
    record (rank 0); `control()` may return "pause", "stop" or "run" at each step."""

    def __init__(self, cfg: TrainConfig, resume: bool = False,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 control: Callable[[], str] | None = None) -> None:
        check_config(cfg)
        self.cfg = cfg
        self.resume = resume
        self.on_event = on_event
        self.control_fn = control
        self.out = Path(cfg.out)
        self.log: JsonLog | None = None

    # -- setup -------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        device = resolve_device(cfg.device)
        self.ctx = ddp.setup(device)
        self.device = ddp.local_device(self.ctx, device)
        self.main = self.ctx.is_main
        state_path = self.out / "state.safetensors"
        if not self.resume and (state_path.exists() or (self.out / CONFIG_FILE).exists()):
            raise TrainingError(f"{self.out} already holds a training run; resume it with "
                                f"--resume {self.out} or choose another --out")
        init = init_model(cfg.model, cfg.stems, cfg.small, cfg.scratch, cfg.model_kwargs,
                          cfg.samplerate, cfg.seed)
        self.init = init
        self.model = init.model.to(self.device)
        self.sources = init.sources
        weights = {get_stem(k).id: v for k, v in cfg.stem_weights.items()}
        others = sorted(set(weights) - set(self.sources))
        if others:
            raise TrainingError(f"--stem-weight: the model has no {', '.join(others)} output "
                                f"(it separates {', '.join(self.sources)})")
        # per-stem loss weights, 1 unless --stem-weight says otherwise
        stem_weights = [weights.get(s, 1.0) for s in self.sources]
        self.samplerate = init.samplerate
        self.seg_len = max(64, int(round(cfg.segment * self.samplerate)))
        self.run_id = uuid.uuid4().hex
        fresh = self.main and not (self.out / CONFIG_FILE).exists()
        if self.main:
            self._check_zoo_name()
            # written before the data are prepared (decoding can take long): a run killed
            # then can be resumed too
            write_json(self.out / CONFIG_FILE, {"config": cfg.to_json(), "run_id": self.run_id})
        try:
            songs, problems = self._prepare_data()
            if cfg.valid_folders:
                # the names prepare_songs keys the validation folders' songs under
                names = song_folder_names([*cfg.folders, *cfg.valid_folders])
                valid_names = set(names[len(cfg.folders):])
                valid = [s for s in songs if s.folder in valid_names]
                train = [s for s in songs if s.folder not in valid_names]
                if not train:
                    raise TrainingError("no training songs are left besides the "
                                        "--valid-folder songs")
            else:
                train, valid = split_songs(songs, cfg.valid_fraction, cfg.seed,
                                           cfg.valid_songs)
        except StemwrightError:
            if fresh:  # nothing to resume: the same command can simply be run again
                (self.out / CONFIG_FILE).unlink(missing_ok=True)
            raise
        self.problems = problems
        if not valid and cfg.validate:
            problems.append("one song only: validating on the training song")
        self.train_songs, self.valid_songs = train, valid or train
        counts = data_summary(train)
        missing = [s for s in self.sources if s != "other" and not counts.get(s)]
        if missing:
            problems.append(f"no training song has {', '.join(missing)}: "
                            + ("these outputs stay" if len(missing) > 1 else
                               "that output stays") + " untrained")
        self.dataset = SegmentDataset(train, self.sources, self.seg_len, cfg.segments_per_song,
                                      cfg.augment(), cfg.force_stem, cfg.force_fraction,
                                      cfg.seed)
        self.sampler = EpochSampler(len(self.dataset), cfg.batch, cfg.seed, self.ctx.rank,
                                    self.ctx.world_size, True, cfg.max_steps)
        self.loader = make_loader(self.dataset, cfg.batch // self.ctx.world_size, self.sampler,
                                  cfg.workers, pin_memory=self.device.type == "cuda")
        self.steps_per_epoch = self.sampler.steps
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.warmup = int(cfg.warmup if cfg.warmup > 1 else round(cfg.warmup * self.total_steps))
        self.loss_fn = Loss(cfg.loss, stem_weights)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.amp_dtype = None
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if cfg.amp and self.device.type == "cuda":
            if _amp_safe(self.model):
                self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported()
                                  else torch.float16)
            else:
                problems.append(f"mixed precision is off for {self.init.architecture}: its "
                                "spectrogram branch needs float32 (TF32 matmuls instead)")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        self.net = ddp.wrap(self.model, self.ctx, self.device)
        self.epoch, self.step = 0, 0
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        keep = None
        if self.resume and state_path.exists():
            keep = self._load(state_path)
        if self.main:
            (self.out / CONTROL_FILE).unlink(missing_ok=True)  # a stale "stop" or "pause"
            self.log = JsonLog(self.out / LOG_FILE, keep_bytes=keep or 0)
            write_json(self.out / CONFIG_FILE, {"config": cfg.to_json(), "run_id": self.run_id})

    def _prepare_data(self):
        """Decode (or find in the cache) every song; rank 0 fills the cache first."""
        if not self.main:
            ddp.barrier(self.ctx)
        folders = [*self.cfg.folders, *self.cfg.valid_folders]
        out = prepare_songs(folders, self.samplerate, self.cfg.cache_dir,
                            progress=self._data_progress)
        if self.main:
            ddp.barrier(self.ctx)
        return out

    def _data_progress(self, done: int, total: int, key: str) -> None:
        if self.main and self.on_event is not None:
            self.on_event({"event": "data", "done": done, "total": total, "song": key})

    def _check_zoo_name(self) -> None:
        from ..zoo.catalog import ZOO, model_dir
        name = self.cfg.model_name()
        if not self.cfg.install:
            return
        if name in ZOO:
            raise TrainingError(f"'{name}' is a built-in model name; choose --name")
        dest = model_dir(name) / "model.safetensors"
        if dest.exists():
            try:
                run = read_checkpoint_meta(dest).provenance.get("run")
            except StemwrightError:
                run = None
            if run != str(self.out.resolve()):
                raise TrainingError(f"a model called '{name}' is already installed; choose "
                                    f"another --name or remove it (stemwright models remove "
                                    f"{name})")

    # -- state -------------------------------------------------------------------------
    def _state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.model.state_dict().items()})
        opt_tensors, opt_meta = optimizer_to_state(self.optimizer)
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {"epoch": self.epoch, "step": self.step, "best_score": self.best_score,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "history": self.history, "optimizer": opt_meta,
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "python_random": _jsonable_random(random.getstate()),
                "numpy_random": np.random.get_state()[1].tolist(),
                "run_id": self.run_id, "segment": str(getattr(self.model, "segment", ""))}
        return tensors, meta

    def _save_state(self, log_bytes: int) -> None:
        tensors, meta = self._state_tensors()
        meta["log_bytes"] = log_bytes
        save_state(self.out / "state.safetensors", tensors, _clean(meta))

    def _load(self, path: Path) -> int:
        tensors, meta = load_state(path)
        model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model)
        if self.ema is not None:
            ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
            self.ema.model.load_state_dict(ema or model)
        optimizer_from_state(self.optimizer, tensors, meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        random.setstate(_random_state(meta["python_random"]))
        np.random.set_state(("MT19937", np.array(meta["numpy_random"], dtype=np.uint32), 624,
                             0, 0.0))
        seg = meta.get("segment")
        if seg and hasattr(self.model, "segment"):
            self.model.segment = Fraction(seg)
            if self.ema is not None:
                self.ema.model.segment = Fraction(seg)
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.best_score, self.best_epoch = meta.get("best_score"), meta.get("best_epoch")
        self.bad_epochs = int(meta.get("bad_epochs", 0))
        self.history = list(meta.get("history", []))
        self.run_id = meta.get("run_id", self.run_id)
        return int(meta.get("log_bytes", 0))

    # -- checkpoints -------------------------------------------------------------------
    def _weights(self) -> nn.Module:
        """The weights to validate and ship: the EMA when enabled."""
        return self.ema.model if self.ema is not None else self.model

    def _kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.init.kwargs, sources=list(self.sources))
        if hasattr(self.model, "segment") and "segment" in kwargs:
            kwargs["segment"] = Fraction(self.model.segment)
        return kwargs

    def _provenance(self, metrics: dict[str, Any]) -> dict[str, Any]:
        cfg = self.cfg
        return _clean({
            "trained_by": "stemwright train",
            "run": str(self.out.resolve()),
            "run_id": self.run_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "init": self.init.origin,
            "data": {
                "folders": [str(Path(f).resolve()) for f in cfg.folders],
                "valid_folders": [str(Path(f).resolve()) for f in cfg.valid_folders],
                "train_songs": [s.key for s in self.train_songs],
                "valid_songs": [s.key for s in self.valid_songs],
                "stems_per_song": {s.key: list(s.stems) for s in self.train_songs},
                "mapping": {s.key: s.mapping for s in self.train_songs + self.valid_songs},
                "samplerate": self.samplerate,
                "mixing": "adaptive",
            },
            "hyperparameters": cfg.to_json(),
            "world_size": self.ctx.world_size,
            "metrics": metrics,
            "code": code_version(),
        })

    def _save_checkpoint(self, path: Path, metrics: dict[str, Any]) -> Path:
        meta = CheckpointMeta(self.init.architecture, self._kwargs(), list(self.sources),
                              self.samplerate, self._provenance(metrics))
        with torch.no_grad():
            model = copy.deepcopy(self._weights()).cpu().float()
            return save_checkpoint(path, model, meta, overwrite=True)

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> TrainResult:
        try:
            self._setup()
            result = self._run()
            # every process leaves the process group together: a rank that tears gloo down
            # while rank 0 is still saving and installing can abort on exit
            ddp.barrier(self.ctx)
            return result
        finally:
            if self.log is not None:
                self.log.close()
            ddp.shutdown(getattr(self, "ctx", ddp.DistContext()))

    def _emit(self, record: dict[str, Any], sync: bool = False) -> None:
        if not self.main:
            return
        record = _clean(dict(record, time=round(time.time(), 3)))
        if self.log is not None:
            self.log.write(record, sync)
        if self.on_event is not None:
            self.on_event(record)

    def _run(self) -> TrainResult:
        cfg = self.cfg
        from ..architectures.registry import count_parameters
        start = {"event": "resume" if self.epoch or self.step else "start",
                 "epoch": self.epoch, "step": self.step, "model": cfg.model,
                 "architecture": self.init.architecture, "stems": self.sources,
                 "parameters": count_parameters(self.model), "samplerate": self.samplerate,
                 "segment_samples": self.seg_len, "steps_per_epoch": self.steps_per_epoch,
                 "epochs": cfg.epochs, "train_songs": len(self.train_songs),
                 "valid_songs": len(self.valid_songs) if self.valid_songs is not
                 self.train_songs else 0, "device": str(self.device),
                 "world_size": self.ctx.world_size, "problems": self.problems,
                 "stems_in_data": data_summary(self.train_songs), "init": self.init.origin}
        self._emit(start, sync=True)
        reason = "finished"
        while self.epoch < cfg.epochs:
            stopped = self._train_epoch()
            if stopped:
                reason = "stopped"
                break
            metrics = self._validate() if self.main else {}
            self._end_epoch(metrics)
            flags = ddp.broadcast_values([float(self.bad_epochs >= cfg.patience)], self.ctx)
            if flags[0] > 0 and self.epoch < cfg.epochs:
                reason = "early stopping"
                break
        installed = None
        if self.main and reason != "stopped":
            installed = self._install()
        best = self.out / "best.safetensors"
        last = self.out / "last.safetensors"
        self._emit({"event": "end", "reason": reason, "epoch": self.epoch, "step": self.step,
                    "best_score": self.best_score, "best_epoch": self.best_epoch,
                    "installed": installed}, sync=True)
        return TrainResult(self.out, best if best.exists() else None,
                           last if last.exists() else None, self.epoch, self.best_score,
                           reason, installed, self.history)

    def _control(self) -> str:
        """"run", "pause" or "stop" from the callback or the run folder's control file."""
        state = "run"
        if self.main:
            if self.control_fn is not None:
                state = self.control_fn() or "run"
            if state == "run":
                with contextlib.suppress(OSError):
                    text = (self.out / CONTROL_FILE).read_text(encoding="utf-8").strip()
                    state = text if text in ("pause", "stop") else "run"
        if self.ctx.enabled:
            code = ddp.broadcast_values([("run", "pause", "stop").index(state)], self.ctx)
            state = ("run", "pause", "stop")[int(code[0])]
        return state

    def _wait_if_paused(self) -> bool:
        """Block while paused; True when asked to stop."""
        state = self._control()
        if state == "pause":
            self._emit({"event": "paused", "epoch": self.epoch, "step": self.step})
            while state == "pause":
                time.sleep(0.2)
                state = self._control()
            if state == "run":
                self._emit({"event": "resumed", "epoch": self.epoch, "step": self.step})
        return state == "stop"

    def _train_epoch(self) -> bool:
        """One epoch; True when stopped by the user (the epoch is then not saved)."""
        cfg = self.cfg
        self.sampler.set_epoch(self.epoch)
        self.net.train()
        t_epoch = time.perf_counter()
        t_log, seg_log = t_epoch, 0
        sum_loss, n_loss, per_stem, per_count = 0.0, 0, torch.zeros(len(self.sources)), \
            torch.zeros(len(self.sources))
        for i, (mix, target, mask) in enumerate(self.loader):
            if self._wait_if_paused():
                self._emit({"event": "stopped", "epoch": self.epoch, "step": self.step})
                return True
            mix = mix.to(self.device, non_blocking=True)
            target = target.to(self.device, non_blocking=True)
            mask = mask.to(self.device, non_blocking=True)
            lr = cfg.lr * lr_factor(self.step, self.total_steps, self.warmup, cfg.schedule,
                                    cfg.min_lr)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                est = self.net(mix)
            terms, keep = self.loss_fn.terms(est.float(), target, mask)
            total, count = masked_sum(terms, keep)
            # the mean over the global batch: every process divides by the global count
            stats = ddp.all_reduce_sum(torch.stack([total.detach(), count.detach()]).double(),
                                       self.ctx)
            denom = stats[1].clamp(min=1.0).to(total.dtype)
            loss = total * self.ctx.world_size / denom
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            grad_norm = None
            if cfg.clip > 0:
                self.scaler.unscale_(self.optimizer)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                                 cfg.clip))
            value = float(stats[0] / stats[1].clamp(min=1.0))
            if math.isfinite(value):
                self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.model)
            self.step += 1
            seg_log += cfg.batch
            sum_loss += value
            n_loss += 1
            with torch.no_grad():
                per_stem += (terms.detach() * keep).sum(0).float().cpu()
                per_count += keep.sum(0).float().cpu()
            if self.main and (self.step % max(1, cfg.log_every) == 0 or i == 0):
                now = time.perf_counter()
                self._emit({"event": "step", "epoch": self.epoch, "step": self.step,
                            "batch": i + 1, "batches": self.steps_per_epoch, "loss": value,
                            "lr": lr, "grad_norm": grad_norm,
                            "segments_per_s": seg_log / max(now - t_log, 1e-9)})
                t_log, seg_log = now, 0
        elapsed = time.perf_counter() - t_epoch
        self._epoch_train = {
            "train_loss": sum_loss / max(n_loss, 1),
            "train_loss_per_stem": {s: float(per_stem[j] / per_count[j])
                                    for j, s in enumerate(self.sources) if per_count[j] > 0},
            "segments_per_s": n_loss * cfg.batch / max(elapsed, 1e-9),
            "train_seconds": elapsed, "lr": self.optimizer.param_groups[0]["lr"]}
        return False

    @torch.no_grad()
    def _validate(self) -> dict[str, Any]:
        """Per-stem SDR on the validation songs (median over songs) and the loss."""
        cfg = self.cfg
        if not cfg.validate:
            return {}
        t0 = time.perf_counter()
        model = self._weights()
        was_training = model.training
        model.eval()
        vset = ValidationSet(self.valid_songs, self.sources, self.seg_len, cfg.valid_segments)
        loader = make_loader(vset, max(1, cfg.batch // self.ctx.world_size), None, 0)
        songs: dict[int, dict[str, list]] = {}
        masks: dict[int, torch.Tensor] = {}
        loss_sum, loss_count = 0.0, 0.0
        for mix, target, mask, song in loader:
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                est = model(mix.to(self.device)).float().cpu()
            terms, keep = self.loss_fn.terms(est, target, mask)
            total, count = masked_sum(terms, keep)
            loss_sum, loss_count = loss_sum + float(total), loss_count + float(count)
            for b in range(mix.shape[0]):
                k = int(song[b])
                entry = songs.setdefault(k, {"est": [], "ref": []})
                entry["est"].append(est[b].numpy())
                entry["ref"].append(target[b].numpy())
                masks[k] = mask[b]
        if was_training:
            model.train()
        per_stem: dict[str, list[float]] = {s: [] for s in self.sources}
        per_stem_u: dict[str, list[float]] = {s: [] for s in self.sources}
        window = self.samplerate
        for k, entry in songs.items():
            est = np.concatenate(entry["est"], axis=-1)  # [S, C, T]
            ref = np.concatenate(entry["ref"], axis=-1)
            present = [j for j in range(len(self.sources)) if masks[k][j] > 0
                       and np.any(ref[j])]
            for j in present:
                per_stem_u[self.sources[j]].append(sdr(ref[j], est[j]))
            if cfg.valid_metric == "sdr" and present and ref.shape[-1] >= window:
                scores = bss_eval(ref[present], est[present], window, window, skip="own",
                                  device="cpu")
                med = scores.medians()["sdr"]
                for i, j in enumerate(present):
                    per_stem[self.sources[j]].append(float(med[i]))
        metric = per_stem if cfg.valid_metric == "sdr" else per_stem_u
        if cfg.valid_metric == "sdr" and not any(per_stem.values()):
            metric = per_stem_u  # segments shorter than a BSS Eval window
        medians = {s: _nanmedian(v) for s, v in metric.items() if v}
        finite = [v for v in medians.values() if math.isfinite(v)]
        valid_loss = loss_sum / max(loss_count, 1.0)
        score = float(np.mean(finite)) if finite else -valid_loss
        return {"valid_sdr": medians, "valid_usdr": {s: _nanmedian(v) for s, v in
                                                      per_stem_u.items() if v},
                "valid_loss": valid_loss, "score": score,
                "valid_metric": cfg.valid_metric if metric is per_stem else "usdr",
                "valid_seconds": time.perf_counter() - t0}

    def _end_epoch(self, metrics: dict[str, Any]) -> bool | None:
        """Checkpoints, early-stopping bookkeeping, log; returns whether it improved."""
        record = dict(self._epoch_train, **metrics)
        score = metrics.get("score")
        if score is None:  # validation off: the training loss decides
            score = -record["train_loss"]
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch, 0
        else:
            self.bad_epochs += 1
        finished = self.epoch
        self.epoch += 1
        record.update({"event": "epoch", "epoch": finished, "step": self.step,
                       "improved": improved, "best_score": self.best_score,
                       "best_epoch": self.best_epoch})
        summary = {k: v for k, v in record.items() if k != "time"}
        self.history.append(_clean(summary))
        if self.main:
            metrics_for_file = {k: record[k] for k in ("epoch", "train_loss", "valid_sdr",
                                                        "valid_loss", "score") if k in record}
            if improved:
                self._save_checkpoint(self.out / "best.safetensors", metrics_for_file)
            self._save_checkpoint(self.out / "last.safetensors", metrics_for_file)
            self._emit(record, sync=True)
            self._save_state(self.log.size if self.log is not None else 0)
        ddp.barrier(self.ctx)
        return improved

    def _install(self) -> str | None:
        """Copy the best checkpoint into the model zoo; returns the model's name."""
        if not self.cfg.install:
            return None
        from ..zoo.catalog import model_dir
        src = self.out / "best.safetensors"
        if not src.exists():
            src = self.out / "last.safetensors"
        if not src.exists():
            return None
        name = self.cfg.model_name()
        dest = model_dir(name) / "model.safetensors"
        data = src.read_bytes()
        _atomic_write(dest, lambda tmp: tmp.write_bytes(data))
        return name


def _nanmedian(values: list[float]) -> float:
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    return float(np.median(arr)) if arr.size else math.nan


def _jsonable_random(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _random_state(data: list) -> tuple:
    return (data[0], tuple(data[1]), data[2])


def train(cfg: TrainConfig, resume: bool = False,
          on_event: Callable[[dict[str, Any]], None] | None = None,
          control: Callable[[], str] | None = None) -> TrainResult:
    """Run (or resume) training as `cfg` says; see `Trainer`."""
    return Trainer(cfg, resume, on_event, control).run()


__all__ = ["CONTROL_FILE", "EMA", "LOG_FILE", "ModelInit", "TrainConfig", "TrainResult",
           "Trainer", "TrainingError", "adapt_heads", "check_config", "code_version",
           "head_plan", "init_model", "load_run_config", "load_state", "lr_factor",
           "optimizer_from_state", "optimizer_to_state", "read_log", "save_state", "train"]
