"""Compute device selection (auto: CUDA, then Apple MPS, then CPU) and CPU threading."""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

from ..errors import StemwrightError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn "auto", "cpu", "cuda", "cuda:1" or "mps" into an available torch device."""
    import torch  # lazy: `stemwright --help` and the CLI start without torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise StemwrightError("CUDA was requested but no CUDA GPU is available; "
                                  "use --device cpu or auto")
        return torch.device(spec)
    if spec == "mps":
        if not _mps_available():
            raise StemwrightError("Apple MPS was requested but is not available here")
        return torch.device("mps")
    if spec == "cpu":
        return torch.device("cpu")
    raise StemwrightError(f"unknown device '{spec}' (choose from {', '.join(DEVICE_CHOICES)})")


def _mps_available() -> bool:
    import torch  # lazy: `stemwright --help` and the CLI start without torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices a user can pick on this machine, "auto" first."""
    import torch  # lazy: `stemwright --help` and the CLI start without torch

    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        out.append("mps")
    return out


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use the physical-ish core count for intra-op parallelism (not hyperthreads)."""
    import torch  # lazy: `stemwright --help` and the CLI start without torch

    if threads is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        threads = affinity or os.cpu_count() or 1
        threads = max(1, min(threads, 16))
    torch.set_num_threads(threads)
    return threads


def describe_machine(device: torch.device | None = None) -> dict:
    """A short description of the machine for benchmark reports."""
    import torch  # lazy: `stemwright --help` and the CLI start without torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        with open("/proc/meminfo") as fh:
            total_kb = int(fh.readline().split()[1])
        info["ram_gb"] = round(total_kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    if device is not None:
        info["device"] = str(device)
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
    return info


def is_out_of_memory(exc: BaseException) -> bool:
    """True for accelerator out-of-memory errors (CUDA, MPS)."""
    import torch  # lazy: `stemwright --help` and the CLI start without torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_accelerator_memory(device: torch.device) -> None:
    """Return cached blocks to the driver after an OOM so a retry can succeed."""
    import torch  # lazy: `stemwright --help` and the CLI start without torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
