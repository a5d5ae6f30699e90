"""A run's files: its resumable state and its log.

    run/state.safetensors     everything needed to resume (weights, EMA, optimizer, RNG,
                              counters): tensors in safetensors, the rest as JSON metadata
    run/log.jsonl             one JSON object per line: start, step, epoch, end events
    run/control               optional, written by the GUI while a run goes: "pause",
                              "run" or "stop" (removed when a run starts)

Every file is written to a temporary name, synced and renamed (`atomic_write`), so a run
killed at any moment (even with SIGKILL) leaves the state of its last finished epoch.
Nothing is pickled: optimizer state is flattened into safetensors + JSON too.
`read_log` reads a run's log back (the GUI, the packaging scripts).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..zoo.checkpoint import _tensors_for_saving
from .config import TrainingError

STATE_FORMAT = "stemwright-train-state"
STATE_VERSION = 1
STATE_FILE = "state.safetensors"
CONTROL_FILE = "control"
LOG_FILE = "log.jsonl"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
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
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str),
                                                   encoding="utf-8"))


def save_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Resumable state: named tensors in safetensors, `meta` as JSON metadata, atomically."""
    clean = _tensors_for_saving(tensors)
    body = json.dumps(dict(meta, format=STATE_FORMAT, version=STATE_VERSION))
    atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata={"state": body}))


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


def clean_json(x: Any) -> Any:
    """NaN/inf -> None, numpy -> Python, recursively (for JSON)."""
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean_json(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    return x



def _jsonable_random(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _random_state(data: list) -> tuple:
    return (data[0], tuple(data[1]), data[2])



def run_state(model: nn.Module, ema: nn.Module | None, optimizer: torch.optim.Optimizer,
              scaler: torch.amp.GradScaler, device: torch.device, counters: dict[str, Any]
              ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, meta) of a run: the weights, the EMA weights (`ema`, or None), optimizer,
    loss scaler and RNG states, and the run's `counters` (epoch, step, ...)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_tensors, opt_meta = optimizer_to_state(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    meta = dict(counters, optimizer=opt_meta,
                scaler=scaler.state_dict() if scaler.is_enabled() else None,
                python_random=_jsonable_random(random.getstate()),
                numpy_random=np.random.get_state()[1].tolist(),
                segment=str(getattr(model, "segment", "")))
    return tensors, meta


def save_run_state(path: Path, model: nn.Module, ema: nn.Module | None,
                   optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   device: torch.device, counters: dict[str, Any], log_bytes: int) -> None:
    """Write `run_state` to `path` (atomically); `log_bytes` is the log's size with it."""
    tensors, meta = run_state(model, ema, optimizer, scaler, device, counters)
    meta["log_bytes"] = log_bytes
    save_state(path, tensors, clean_json(meta))


def restore_run_state(path: Path, model: nn.Module, ema: nn.Module | None,
                      optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                      device: torch.device) -> dict[str, Any]:
    """Load a state written by `save_run_state` into the given objects and the RNGs;
    returns its metadata (the counters, "log_bytes")."""
    tensors, meta = load_state(path)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights)
    if ema is not None:
        ema_weights = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        ema.load_state_dict(ema_weights or weights)
    optimizer_from_state(optimizer, tensors, meta["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    if meta.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(meta["scaler"])
    random.setstate(_random_state(meta["python_random"]))
    np.random.set_state(("MT19937", np.array(meta["numpy_random"], dtype=np.uint32), 624,
                         0, 0.0))
    seg = meta.get("segment")
    if seg and hasattr(model, "segment"):
        model.segment = Fraction(seg)
        if ema is not None:
            ema.segment = Fraction(seg)
    return meta


__all__ = ["CONTROL_FILE", "LOG_FILE", "STATE_FILE", "JsonLog", "atomic_write", "clean_json",
           "load_state", "optimizer_from_state", "optimizer_to_state", "read_log",
           "restore_run_state", "run_state", "save_run_state", "save_state", "write_json"]
