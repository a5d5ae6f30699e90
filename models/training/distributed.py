"""Data-parallel training helpers: torchrun's environment, process groups, DDP.

A run started by torchrun has RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
in its environment; `setup` joins the process group (gloo on CPU, nccl on CUDA GPUs) and
returns a `DistContext`. Without them (a plain `stemwright train`) everything here is a
no-op for a single process, so the trainer has one code path:

    torchrun --nproc-per-node 2 -m stemwright.models.cli.commands train songs/ --model waveunet
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 --master-addr HOST \\
             --master-port 29500 -m stemwright.models.cli.commands train ...   (one per machine)

Every process computes its share of each global batch (`--batch` is the global batch), the
gradients are averaged by DistributedDataParallel, and only rank 0 validates and writes
logs and checkpoints.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import StemwrightError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_context() -> DistContext:
    """The torchrun environment of this process (rank 0 of 1 when there is none)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistContext()
    return DistContext(rank=int(os.environ.get("RANK", "0")), world_size=world,
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: torch.device, timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA)."""
    ctx = env_context()
    if not ctx.enabled:
        return ctx
    if not dist.is_available():
        raise StemwrightError("this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "mps":
        raise StemwrightError("distributed training runs on CUDA GPUs or CPUs, not MPS")
    if not dist.is_initialized():
        kwargs: dict[str, Any] = dict(backend=backend, init_method="env://",
                                      timeout=timedelta(seconds=timeout_s))
        if backend == "nccl":
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, backend)


def local_device(ctx: DistContext, device: torch.device) -> torch.device:
    """cuda:LOCAL_RANK for a distributed CUDA run, else `device`."""
    if ctx.enabled and device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    return device


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """`model` in DistributedDataParallel when the run is distributed."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return getattr(model, "module", model)


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of `tensor` over all processes (in place; a no-op for one process)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_values(values: list[float], ctx: DistContext,
                     device: torch.device | None = None) -> list[float]:
    """Rank 0's numbers on every process (stop flags, scores)."""
    if not ctx.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return [float(v) for v in t.cpu()]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (safe to call twice)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for MASTER_PORT in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


__all__ = ["DistContext", "all_reduce_sum", "barrier", "broadcast_values", "env_context",
           "free_port", "local_device", "setup", "shutdown", "unwrap", "wrap"]
