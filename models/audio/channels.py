"""Channel layout rules: what the models get and how stems come back.

Downmix rule for files with more than two channels (WAVE/SMPTE order L, R, C, LFE, Ls, Rs,
then any extra channels): left = L + 0.7071 C + 0.7071 Ls (+ extra even channels at 0.5),
right = R + 0.7071 C + 0.7071 Rs (+ extra odd channels at 0.5), LFE dropped, then both
scaled down together only if that would clip. Three-channel files are treated as L, R, C.
Mono is duplicated to stereo for the model and stems are averaged back to mono.
"""

from __future__ import annotations

import numpy as np

_C = 0.70710677


def downmix_to_stereo(x: np.ndarray) -> np.ndarray:
    """[C, T] with C > 2 -> [2, T] by the rule in this module's docstring."""
    channels = x.shape[0]
    if channels <= 2:
        raise ValueError("downmix_to_stereo needs more than two channels")
    left = x[0].astype(np.float32, copy=True)
    right = x[1].astype(np.float32, copy=True)
    if channels >= 3:
        left += _C * x[2]
        right += _C * x[2]
    if channels >= 5:
        left += _C * x[4]
    if channels >= 6:
        right += _C * x[5]
    for ch in range(6, channels):
        (left if ch % 2 == 0 else right).__iadd__(0.5 * x[ch])
    out = np.stack([left, right])
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    src_peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0 and peak > src_peak:
        out *= max(src_peak, 1.0) / peak
    return out


def to_stereo(x: np.ndarray) -> np.ndarray:
    """Any channel count -> [2, T] for a stereo model (mono duplicated, >2 downmixed)."""
    if x.shape[0] == 1:
        return np.repeat(x.astype(np.float32, copy=False), 2, axis=0)
    if x.shape[0] == 2:
        return x.astype(np.float32, copy=False)
    return downmix_to_stereo(x)


def from_stereo(x: np.ndarray, channels: int) -> np.ndarray:
    """A stereo stem back to the layout it is compared with: mono averages, else stereo."""
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    return x
