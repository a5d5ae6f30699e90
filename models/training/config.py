"""A training run's configuration: `TrainConfig` (saved as the run folder's config.json),
its validation (`check_config`) and reading it back for --resume (`load_run_config`)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import StemwrightError
from ..stems import get_stem
from .dataset import Augment
from .losses import Loss

CONFIG_FILE = "config.json"


class TrainingError(StemwrightError):
    """A training run cannot start or continue."""


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
    codec_prob: float = 0.0  # share of mixtures sent through MP3/AAC (targets clean)
    eq: float = 0.0  # most dB of each random EQ band per stem (0: off)
    eq_prob: float = 0.5  # share of stems equalised when eq is on
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
                       repitch_prob=self.repitch_prob, codec_prob=self.codec_prob,
                       eq=self.eq, eq_prob=self.eq_prob)

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
    if not 0.0 <= cfg.codec_prob <= 1.0:
        problems.append(f"--codec-prob must be between 0 and 1, not {cfg.codec_prob}")
    if not 0.0 <= cfg.eq <= 24.0 or not 0.0 <= cfg.eq_prob <= 1.0:
        problems.append(f"--eq must be 0 to 24 dB and --eq-prob 0 to 1, not {cfg.eq} and "
                        f"{cfg.eq_prob}")
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



def load_run_config(folder: str | os.PathLike[str]) -> TrainConfig:
    """The configuration saved in a run folder (for --resume)."""
    path = Path(folder) / CONFIG_FILE
    try:
        return TrainConfig.from_json(json.loads(path.read_text(encoding="utf-8"))["config"])
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"{folder}: not a training run folder ({exc})") from exc


__all__ = ["CONFIG_FILE", "TrainConfig", "TrainingError", "check_config", "load_run_config"]
