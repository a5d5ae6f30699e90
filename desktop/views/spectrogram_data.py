"""Spectrogram data, plain numpy: `compute_spectrogram` (run it in a worker) and the
`Spectrogram` it returns, with its dB images. Imports no Qt widgets (the colour map is
read from pyqtgraph only when an image is rendered).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stemwright.models.errors import Cancelled

DB_RANGE = 80.0  # dB shown below the loudest bin
LOG_BINS = 384  # rows of the log-frequency image
F_MIN = 30.0  # lowest frequency on the log axis
COLORMAP = "inferno"


@dataclass
class Spectrogram:
    """Power spectrogram in dB relative to its loudest bin; `db` is [frames, bins]."""

    db: np.ndarray  # float32 [N, F]
    samplerate: int
    hop: int
    n_fft: int
    length: int  # samples of the analysed signal
    key: str = "mix"
    images: dict = field(default_factory=dict)  # log: bool -> RGBA uint8 [N, rows, 4]

    @property
    def freqs(self) -> np.ndarray:
        return np.fft.rfftfreq(self.n_fft, 1.0 / self.samplerate)

    @property
    def duration(self) -> float:
        return self.length / self.samplerate

    def log_image(self, bins: int = LOG_BINS, f_min: float = F_MIN) -> np.ndarray:
        """The spectrogram resampled onto log-spaced frequencies from f_min to Nyquist."""
        nyquist = self.samplerate / 2
        f_min = min(f_min, nyquist / 4)
        targets = np.geomspace(f_min, nyquist, bins)
        pos = targets / nyquist * (self.db.shape[1] - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, self.db.shape[1] - 1)
        w = (pos - lo).astype(np.float32)
        return self.db[:, lo] * (1 - w) + self.db[:, hi] * w

    def linear_image(self, max_rows: int = 512) -> np.ndarray:
        """The dB image with its frequency bins max-pooled down to at most `max_rows`."""
        db = self.db
        factor = max(1, math.ceil(db.shape[1] / max_rows))
        if factor == 1:
            return db
        rows = db.shape[1] // factor
        pooled = db[:, :rows * factor].reshape(db.shape[0], rows, factor).max(axis=2)
        return pooled

    def image(self, log: bool) -> np.ndarray:
        """RGBA rendering (cached; `render` precomputes both in the worker)."""
        if log not in self.images:
            self.images[log] = to_rgba(self.log_image() if log else self.linear_image())
        return self.images[log]

    def render(self) -> Spectrogram:
        """Precompute both RGBA images (call off the GUI thread)."""
        self.image(True)
        self.image(False)
        return self


def to_rgba(db: np.ndarray) -> np.ndarray:
    """Map dB (-DB_RANGE..0) through the colour map to RGBA uint8."""
    from pyqtgraph import colormap  # only when rendering; no Qt import for the data

    lut = colormap.get(COLORMAP).getLookupTable(nPts=256, alpha=True)
    index = np.clip((db + DB_RANGE) * (255.0 / DB_RANGE), 0, 255).astype(np.uint8)
    return lut[index]


#: a spectrogram whose loudest bin is at or below this (the 1e-12 floor is -120 dB) is
#: silence
SILENT_DB = -119.0


def compute_spectrogram(signal: np.ndarray, samplerate: int, n_fft: int = 2048,
                        max_frames: int = 3000,
                        cancel: Callable[[], bool] | None = None,
                        progress: Callable[[float], None] | None = None) -> Spectrogram:
    """Hann-windowed STFT of the channel mean; the hop grows for long songs so at most
    `max_frames` columns are computed (a 10-minute song takes well under a second)."""
    x = np.asarray(signal, dtype=np.float32)
    if x.ndim == 2 and x.shape[0] > 1:
        mono = np.empty(x.shape[1], dtype=np.float32)
        for start in range(0, x.shape[1], 1 << 20):  # short steps: the GUI thread never
            seg = x[:, start:start + (1 << 20)]    # waits long for the interpreter lock
            np.mean(seg, axis=0, out=mono[start:start + seg.shape[1]])
        x = mono
    elif x.ndim == 2:
        x = x[0]
    length = len(x)
    hop = max(n_fft // 4, math.ceil(length / max_frames))
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    if len(padded) < n_fft:
        padded = np.pad(padded, (0, n_fft - len(padded)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    n = frames.shape[0]
    window = np.hanning(n_fft).astype(np.float32)
    db = np.empty((n, n_fft // 2 + 1), dtype=np.float32)
    step = 256
    for start in range(0, n, step):
        if cancel is not None and cancel():
            raise Cancelled("spectrogram cancelled")
        block = frames[start:start + step] * window
        spec = np.fft.rfft(block, axis=1)
        power = spec.real ** 2 + spec.imag ** 2
        db[start:start + step] = 10.0 * np.log10(power + 1e-12)
        if progress is not None:
            progress(min(1.0, (start + step) / n))
    peak = float(db.max()) if db.size else 0.0
    if peak <= SILENT_DB:  # silence: dark everywhere, not "0 dB" relative to itself
        db.fill(-DB_RANGE - 20)
    else:
        db -= peak
        np.maximum(db, -DB_RANGE - 20, out=db)
    return Spectrogram(db, int(samplerate), hop, n_fft, length).render()
