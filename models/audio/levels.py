"""Level and placement rules shared by the live mixer, the multitrack mixdown and the song
generators: the one pan law and the one sample-peak measure."""

from __future__ import annotations

import math

import numpy as np


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power (left, right) factors for `pan` in [-1, 1] (clamped), unity at the
    centre and sqrt(2) on the side a source is panned to; a mono source placed with
    `pan_gains(p) / sqrt(2)` keeps its power at every position."""
    p = min(1.0, max(-1.0, float(pan)))
    angle = (p + 1.0) * math.pi / 4.0
    left, right = math.sqrt(2.0) * math.cos(angle), math.sqrt(2.0) * math.sin(angle)
    # Exact values at the centre and the edges (cos(pi/2) is 6e-17, not 0).
    if p == 0.0:
        return 1.0, 1.0
    if p == 1.0:
        left = 0.0
    if p == -1.0:
        right = 0.0
    return left, right


def sample_peak(x: np.ndarray) -> float:
    """Largest absolute sample value (0.0 for empty input)."""
    return float(np.max(np.abs(x))) if np.size(x) else 0.0


__all__ = ["pan_gains", "sample_peak"]
