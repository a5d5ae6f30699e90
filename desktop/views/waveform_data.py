"""Waveform data, plain numpy (no Qt): the min/max envelope pyramid that workers compute
(`Envelope.compute`) and the views draw, and the mm:ss time format.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stemwright.models.errors import Cancelled

TIME_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
              60, 120, 300, 600, 900, 1800, 3600)


def format_time(seconds: float, step: float = 1.0) -> str:
    """mm:ss (h:mm:ss past an hour), with decimals when `step` is below a second."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    decimals = 0 if step >= 1 else min(3, max(1, math.ceil(-math.log10(step) - 1e-9)))
    scale = 10 ** decimals
    total = round(seconds * scale)
    whole, frac = divmod(total, scale)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    if decimals:
        text += f".{frac:0{decimals}d}"
    return sign + text


# -- envelope --------------------------------------------------------------------------

@dataclass
class Envelope:
    """Min/max pyramid of a [C, T] signal (channels combined), for instant drawing."""

    data: np.ndarray  # the signal itself, for sample-level zoom
    samplerate: int
    levels: list[tuple[int, np.ndarray, np.ndarray]]  # (block, mins, maxs), finest first

    BASE_BLOCK = 16
    FACTOR = 8
    CHUNK = 1 << 20  # samples per step, so cancellation is quick

    @property
    def length(self) -> int:
        return int(self.data.shape[-1])

    @property
    def peak(self) -> float:
        """Largest absolute sample value."""
        _, mins, maxs = self.levels[-1]
        if not len(mins):
            return 0.0
        return float(max(-mins.min(), maxs.max()))

    @property
    def duration(self) -> float:
        return self.length / self.samplerate

    @classmethod
    def compute(cls, data: np.ndarray, samplerate: int,
                cancel: Callable[[], bool] | None = None) -> Envelope:
        """Build the pyramid: ~0.1 s per stereo 10-minute song (numpy, vectorised)."""
        data = np.asarray(data, dtype=np.float32)
        if data.ndim == 1:
            data = data[None, :]
        length = data.shape[-1]
        block = cls.BASE_BLOCK
        nbins = -(-length // block)
        mins = np.empty(nbins, dtype=np.float32)
        maxs = np.empty(nbins, dtype=np.float32)
        step = cls.CHUNK  # multiple of block
        for start in range(0, length, step):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            seg = data[:, start:start + step]
            lo, hi = seg[0], seg[0]
            for ch in seg[1:]:
                lo, hi = np.minimum(lo, ch), np.maximum(hi, ch)
            n = len(lo)
            full = n // block * block
            b0 = start // block
            if full:
                mins[b0:b0 + full // block] = _pairwise(lo[:full].reshape(-1, block),
                                                        np.minimum)
                maxs[b0:b0 + full // block] = _pairwise(hi[:full].reshape(-1, block),
                                                        np.maximum)
            if full < n:
                mins[b0 + full // block] = lo[full:].min()
                maxs[b0 + full // block] = hi[full:].max()
        if length == 0:
            mins = maxs = np.zeros(0, dtype=np.float32)
        levels = [(block, mins, maxs)]
        while len(mins) > 256:
            mins, maxs = _reduce(mins, cls.FACTOR, np.minimum), _reduce(maxs, cls.FACTOR,
                                                                         np.maximum)
            block *= cls.FACTOR
            levels.append((block, mins, maxs))
        return cls(data, int(samplerate), levels)

    @classmethod
    def zeros(cls, data: np.ndarray, samplerate: int) -> Envelope:
        """The envelope of an all-zero `data` [C, T] (a buffer about to be filled), without
        reading it; keep it current with `update` as regions are written."""
        length = data.shape[-1]
        block = cls.BASE_BLOCK
        nbins = -(-length // block)
        levels = [(block, np.zeros(nbins, np.float32), np.zeros(nbins, np.float32))]
        while nbins > 256:
            nbins = -(-nbins // cls.FACTOR)
            block *= cls.FACTOR
            levels.append((block, np.zeros(nbins, np.float32), np.zeros(nbins, np.float32)))
        return cls(data, int(samplerate), levels)

    def update(self, start: int, end: int) -> None:
        """Recompute the bins covering samples [start, end) after `data` changed there
        (every level, in place: cost proportional to the region, not the song)."""
        start, end = max(0, int(start)), min(self.length, int(end))
        if end <= start or not self.levels:
            return
        block, mins, maxs = self.levels[0]
        b0, b1 = start // block, -(-end // block)
        seg = self.data[:, b0 * block:min(self.length, b1 * block)]
        lo, hi = seg[0], seg[0]
        for ch in seg[1:]:
            lo, hi = np.minimum(lo, ch), np.maximum(hi, ch)
        mins[b0:b1] = _reduce(lo, block, np.minimum)
        maxs[b0:b1] = _reduce(hi, block, np.maximum)
        prev_mins, prev_maxs = mins, maxs
        for _block, mins, maxs in self.levels[1:]:
            b0, b1 = b0 // self.FACTOR, -(-b1 // self.FACTOR)
            i0, i1 = b0 * self.FACTOR, min(len(prev_mins), b1 * self.FACTOR)
            mins[b0:b1] = _reduce(prev_mins[i0:i1], self.FACTOR, np.minimum)
            maxs[b0:b1] = _reduce(prev_maxs[i0:i1], self.FACTOR, np.maximum)
            prev_mins, prev_maxs = mins, maxs

    def slice(self, t0: float, t1: float, max_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Points (x seconds, y) for the visible range t0..t1 with at most ~2*max_bins
        points: raw samples when zoomed in, otherwise an interleaved min/max zig-zag."""
        sr = self.samplerate
        max_bins = max(int(max_bins), 16)
        a = max(0, int(math.floor(t0 * sr)) - 1)
        b = min(self.length, int(math.ceil(t1 * sr)) + 2)
        n = b - a
        if n <= 0:
            return np.zeros(0), np.zeros(0)
        if n <= 4 * max_bins:  # few enough samples to draw them all
            seg = self.data[:, a:b]
            y = seg[0] if seg.shape[0] == 1 else seg.mean(axis=0)
            return (a + np.arange(n)) / sr, np.asarray(y, dtype=np.float32)
        # the coarsest level that still has a bin per wanted point; grouped down below
        block, mins, maxs = self.levels[0]
        for level in self.levels[1:]:
            if n / level[0] < max_bins:
                break
            block, mins, maxs = level
        i0 = max(0, a // block - 1)
        i1 = min(len(mins), -(-b // block) + 1)
        group = max(1, math.ceil((i1 - i0) / max_bins))
        if group > 1:
            i0 = i0 // group * group
            i1 = min(len(mins), -(-i1 // group) * group)
            mn = _reduce(mins[i0:i1], group, np.minimum)
            mx = _reduce(maxs[i0:i1], group, np.maximum)
        else:
            mn, mx = mins[i0:i1], maxs[i0:i1]
        width = block * group
        centres = (i0 * block + (np.arange(len(mn)) + 0.5) * width) / sr
        x = np.repeat(centres, 2)
        y = np.column_stack((mn, mx)).ravel()
        return x, y


def _pairwise(rows: np.ndarray, op: np.ufunc) -> np.ndarray:
    """Reduce each row (power-of-two length) by halving: ~3x faster than op.reduce(axis=1)
    for short rows."""
    while rows.shape[1] > 1:
        half = rows.shape[1] // 2
        rows = op(rows[:, :half], rows[:, half:2 * half])
    return rows[:, 0]


def _reduce(values: np.ndarray, factor: int, op: np.ufunc) -> np.ndarray:
    """Reduce consecutive groups of `factor` values with `op` (the last group may be short)."""
    n = len(values)
    full = n // factor * factor
    head = op.reduce(values[:full].reshape(-1, factor), axis=1) if full else values[:0]
    if full < n:
        head = np.append(head, op.reduce(values[full:]))
    return head.astype(np.float32, copy=False)
