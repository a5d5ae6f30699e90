"""What every benchmark shares: one measurement per child process, so its peak memory is
its own (`run_child`), and reading that peak memory (`peak_rss_mb`).

A child prints its figures as JSON on the last line of its standard output; the parent
reads that line, or records the last line of the child's standard error as the error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_child(cmd: list[str], timeout: float | None = None
              ) -> tuple[dict[str, Any] | None, str | None]:
    """Run `cmd` (a `python -m ...` measurement) with this environment: (the JSON object
    on the last line of its output, None), or (None, why it failed: the last line of its
    standard error, "failed", or "timed out after N s")."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s"
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def proc_status_mb(key: str) -> float | None:
    """A memory figure of /proc/self/status ("VmRSS", "VmHWM") in MB; None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Make VmHWM start again from the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """This process' peak resident set in MB (VmHWM, else getrusage)."""
    peak = proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(ru / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


__all__ = ["peak_rss_mb", "proc_status_mb", "reset_peak_rss", "run_child"]
