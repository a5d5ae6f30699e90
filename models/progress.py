"""Progress reports and cancellation shared by every long engine operation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """A progress report: fraction done, seconds of audio done, and an ETA.

    `message` carries one-off notices (e.g. "GPU out of memory: segment shrunk to 3.9 s").
    """

    fraction: float
    seconds_done: float = 0.0
    seconds_total: float = 0.0
    eta_seconds: float | None = None
    message: str = ""


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


class ProgressTracker:
    """Turns "units done out of total" into `Progress` reports with an ETA."""

    def __init__(self, callback: ProgressCallback | None, total_units: float,
                 seconds_total: float = 0.0) -> None:
        self.callback = callback
        self.total = max(float(total_units), 1e-9)
        self.seconds_total = seconds_total
        self.start = time.monotonic()
        self.done = 0.0

    def advance(self, units: float = 1.0) -> None:
        """Mark `units` more work done and report."""
        self.done = min(self.total, self.done + units)
        self.report()

    def report(self, message: str = "") -> None:
        """Send the current state (and an optional notice) to the callback."""
        if self.callback is None:
            return
        fraction = self.done / self.total
        elapsed = time.monotonic() - self.start
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        self.callback(Progress(fraction, fraction * self.seconds_total, self.seconds_total,
                               eta, message))


def check_cancel(cancel: CancelCheck | None) -> None:
    """Raise `Cancelled` if the user asked to stop."""
    if cancel is not None and cancel():
        raise Cancelled("separation cancelled")
