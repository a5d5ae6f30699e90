"""High-quality sample-rate conversion (soxr; see `stemwright bench-resample` for why)."""

from __future__ import annotations

import numpy as np
import soxr


def resampled_length(length: int, sr_in: int, sr_out: int) -> int:
    """Length a `length`-sample signal has at the new rate (rounded to nearest)."""
    return int(round(length * sr_out / sr_in))


def resample(x: np.ndarray, sr_in: int, sr_out: int, quality: str = "VHQ") -> np.ndarray:
    """Resample `x` [C, T] from `sr_in` to `sr_out`; returns float32 [C, T'] with T' exactly
    `resampled_length(T, sr_in, sr_out)`."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    target = resampled_length(x.shape[-1], sr_in, sr_out)
    y = soxr.resample(np.ascontiguousarray(x.T, dtype=np.float32), sr_in, sr_out,
                      quality=quality).T
    return fit_length(np.ascontiguousarray(y, dtype=np.float32), target)


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly `length` samples."""
    if x.shape[-1] == length:
        return x
    if x.shape[-1] > length:
        return x[..., :length]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])]
    return np.pad(x, pad)
