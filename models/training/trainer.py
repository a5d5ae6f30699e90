"""The training engine: fine-tune or train any registered architecture on multitrack folders.

`train(TrainConfig(...))` runs the whole thing in a run folder:

    run/config.json           the configuration (a resumed run reads it back; config.py)
    run/log.jsonl             one JSON object per line: start, step, epoch, end events
    run/best.safetensors      Stemwright checkpoint with the best validation score
    run/last.safetensors      Stemwright checkpoint after the last finished epoch
    run/state.safetensors     everything needed to resume (state.py)
    run/control               optional, written by the GUI while a run goes: "pause",
                              "run" or "stop" (removed when a run starts)

A run killed at any moment (even with SIGKILL) leaves the state of its last finished
epoch, and `train(cfg, resume=True)` continues from there with the same data order and
RNG. The model comes from `init_model` (model_init.py).

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
import math
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..architectures import registry as archs
from ..errors import StemwrightError
from ..evaluation.metrics import bss_eval, sdr
from ..separation.devices import resolve_device
from ..stems import get_stem
from ..zoo.catalog import ZOO, model_dir
from ..zoo.checkpoint import CheckpointMeta, read_checkpoint_meta, save_checkpoint
from . import distributed as ddp
from .config import CONFIG_FILE, TrainConfig, TrainingError, check_config
from .dataset import (
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
from .model_init import init_model
from .state import (
    CONTROL_FILE,
    LOG_FILE,
    STATE_FILE,
    JsonLog,
    atomic_write,
    clean_json,
    restore_run_state,
    save_run_state,
    write_json,
)


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



def code_version() -> dict[str, str]:
    """Stemwright, torch and demucs versions and the git commit of the code, if known."""

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
        """Device and process group, then the model, the data, the optimizer and, when
        resuming, the saved state."""
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        device = resolve_device(cfg.device)
        self.ctx = ddp.setup(device)
        self.device = ddp.local_device(self.ctx, device)
        self.main = self.ctx.is_main
        if not self.resume and ((self.out / STATE_FILE).exists()
                                or (self.out / CONFIG_FILE).exists()):
            raise TrainingError(f"{self.out} already holds a training run; resume it with "
                                f"--resume {self.out} or choose another --out")
        self._build_model()
        self.run_id = uuid.uuid4().hex
        fresh = self.main and not (self.out / CONFIG_FILE).exists()
        if self.main:
            self._check_zoo_name()
            # written before the data are prepared (decoding can take long): a run killed
            # then can be resumed too
            write_json(self.out / CONFIG_FILE, {"config": cfg.to_json(), "run_id": self.run_id})
        self._build_data(fresh)
        self._build_optimizer()
        self._restore_state()

    def _build_model(self) -> None:
        """The model to train, its stems, sample rate and per-stem loss weights."""
        cfg = self.cfg
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
        self.stem_weights = [weights.get(s, 1.0) for s in self.sources]
        self.samplerate = init.samplerate
        self.seg_len = max(64, int(round(cfg.segment * self.samplerate)))

    def _build_data(self, fresh: bool) -> None:
        """Training and validation songs, the segment dataset, its sampler and loader.
        `fresh`: this run wrote config.json just now (removed again when the data fail)."""
        cfg = self.cfg
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

    def _build_optimizer(self) -> None:
        """Learning-rate schedule, loss, AdamW, mixed precision, EMA and the (data-parallel)
        network the loop calls."""
        cfg = self.cfg
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.warmup = int(cfg.warmup if cfg.warmup > 1 else round(cfg.warmup * self.total_steps))
        self.loss_fn = Loss(cfg.loss, self.stem_weights)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.amp_dtype = None
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if cfg.amp and self.device.type == "cuda":
            if archs.amp_safe(self.model):
                self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported()
                                  else torch.float16)
            else:
                self.problems.append(f"mixed precision is off for {self.init.architecture}: "
                                     "its spectrogram branch needs float32 (TF32 matmuls "
                                     "instead)")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        self.net = ddp.wrap(self.model, self.ctx, self.device)

    def _restore_state(self) -> None:
        """Counters from zero, or the saved state when resuming; then the log (cut back to
        the saved state's end) and config.json."""
        self.epoch, self.step = 0, 0
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        keep = None
        state_path = self.out / STATE_FILE
        if self.resume and state_path.exists():
            keep = self._load(state_path)
        if self.main:
            (self.out / CONTROL_FILE).unlink(missing_ok=True)  # a stale "stop" or "pause"
            self.log = JsonLog(self.out / LOG_FILE, keep_bytes=keep or 0)
            write_json(self.out / CONFIG_FILE,
                       {"config": self.cfg.to_json(), "run_id": self.run_id})

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
    def _save_state(self, log_bytes: int) -> None:
        counters = {"epoch": self.epoch, "step": self.step, "best_score": self.best_score,
                    "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                    "history": self.history, "run_id": self.run_id}
        save_run_state(self.out / STATE_FILE, self.model,
                       self.ema.model if self.ema is not None else None, self.optimizer,
                       self.scaler, self.device, counters, log_bytes)

    def _load(self, path: Path) -> int:
        meta = restore_run_state(path, self.model,
                                 self.ema.model if self.ema is not None else None,
                                 self.optimizer, self.scaler, self.device)
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
        return clean_json({
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
        record = clean_json(dict(record, time=round(time.time(), 3)))
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
        self.history.append(clean_json(summary))
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
        src = self.out / "best.safetensors"
        if not src.exists():
            src = self.out / "last.safetensors"
        if not src.exists():
            return None
        name = self.cfg.model_name()
        dest = model_dir(name) / "model.safetensors"
        data = src.read_bytes()
        atomic_write(dest, lambda tmp: tmp.write_bytes(data))
        return name


def _nanmedian(values: list[float]) -> float:
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    return float(np.median(arr)) if arr.size else math.nan



def train(cfg: TrainConfig, resume: bool = False,
          on_event: Callable[[dict[str, Any]], None] | None = None,
          control: Callable[[], str] | None = None) -> TrainResult:
    """Run (or resume) training as `cfg` says; see `Trainer`."""
    return Trainer(cfg, resume, on_event, control).run()


__all__ = ["EMA", "TrainResult", "Trainer", "code_version", "lr_factor", "train"]
