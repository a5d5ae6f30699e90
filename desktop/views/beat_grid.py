"""The song's beat grid, for the loop region: snap a time to the nearest beat, and the
bar and beat lines the ruler draws (numpy only, no Qt).

Built from the tempo analysis (`TempoKey`): it finds beat times in the first two minutes
and the tempo; before the first and after the last detected beat the grid goes on at the
tempo, so the whole song snaps. Bars are counted in 4/4 from the first detected beat (the
analysis finds no downbeats).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BEATS_PER_BAR = 4
MIN_BPM, MAX_BPM = 20.0, 400.0  # outside this a tempo is not believed
MAX_BEATS = 200_000  # bounds the grid whatever the song's length (about 8 h at 400 bpm)


@dataclass(frozen=True)
class BeatGrid:
    """Beat times (seconds, ascending) covering a song; `first` is the index of the first
    detected beat, the start of bar 1."""

    beats: np.ndarray
    first: int = 0
    beats_per_bar: int = BEATS_PER_BAR

    @classmethod
    def from_analysis(cls, beats: np.ndarray | list[float], bpm: float | None,
                      duration: float) -> BeatGrid | None:
        """The grid of a song `duration` seconds long from detected `beats` and `bpm`;
        None when the analysis found no usable tempo (then nothing snaps)."""
        if bpm is None or not math.isfinite(bpm) or not MIN_BPM <= bpm <= MAX_BPM:
            return None
        if not math.isfinite(duration) or duration <= 0:
            return None
        found = np.asarray(beats, dtype=np.float64).ravel()
        found = np.unique(found[np.isfinite(found) & (found >= 0) & (found <= duration)])
        if found.size < 2:
            return None
        period = 60.0 / bpm
        if duration / period > MAX_BEATS:
            return None
        before = int(math.floor(found[0] / period))
        after = int(math.floor((duration - found[-1]) / period))
        head = found[0] - period * np.arange(before, 0, -1)
        tail = found[-1] + period * np.arange(1, after + 1)
        return cls(np.concatenate([head, found, tail]), first=before)

    @property
    def period(self) -> float:
        """The typical beat length in seconds."""
        return float(np.median(np.diff(self.beats))) if self.beats.size > 1 else 0.0

    def snap(self, seconds: float) -> float:
        """The beat nearest to `seconds`."""
        i = int(np.searchsorted(self.beats, seconds))
        if i <= 0:
            return float(self.beats[0])
        if i >= self.beats.size:
            return float(self.beats[-1])
        before, after = self.beats[i - 1], self.beats[i]
        return float(before if seconds - before <= after - seconds else after)

    def bars(self) -> np.ndarray:
        """The bar lines (the first beat of every bar), seconds."""
        index = np.arange(self.beats.size) - self.first
        return self.beats[index % self.beats_per_bar == 0]


__all__ = ["BEATS_PER_BAR", "BeatGrid"]
