"""Tempo, beat times and key of a song, for the song's info line and DAW projects.

Headless (no Qt) and bounded: only the first `MAX_SECONDS` of the song are analysed, as
a mono mix at 22050 Hz. The tempo and beats come from librosa's beat tracker; the key from
the Krumhansl-Schmuckler method: the mean chroma (energy of each pitch class) is correlated
with the 24 rotated major and minor key profiles and the best match wins. Silence (or
audio too short to judge) gives no tempo and no key rather than a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..audio.resample import resample
from ..errors import AudioError

#: the analysis rate and the most audio analysed (seconds from the start)
ANALYSIS_RATE = 22050
MAX_SECONDS = 120.0
#: below this RMS (about -90 dBFS) the audio counts as silence
_SILENCE_RMS = 3e-5
#: the shortest audio analysed (seconds): a few beats are needed for a tempo
_MIN_SECONDS = 2.0

#: Krumhansl-Kessler probe-tone profiles, from C
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29,
                          2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34,
                          3.17])
MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")


@dataclass
class TempoKey:
    """What `detect_tempo_key` found; bpm and key are None when it could not tell."""

    bpm: float | None
    beats: np.ndarray = field(default_factory=lambda: np.zeros(0))  # seconds
    key: str | None = None  # "Eb major", "C# minor"
    key_confidence: float = 0.0  # the key profile's correlation with the chroma, 0..1

    def describe(self) -> str:
        """"84 bpm, Eb major" for the song's info line; "" when nothing was found."""
        parts = []
        if self.bpm is not None:
            parts.append(f"{self.bpm:.0f} bpm")
        if self.key is not None:
            parts.append(self.key)
        return ", ".join(parts)


def analysis_input(audio: np.ndarray, samplerate: int) -> np.ndarray:
    """The first `MAX_SECONDS` as mono float32 at `ANALYSIS_RATE`."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise AudioError(f"tempo and key need audio shaped [channels, samples], not {x.shape}")
    if samplerate <= 0:
        raise AudioError(f"tempo and key need a positive sample rate, not {samplerate}")
    x = x[:, :int(MAX_SECONDS * samplerate)]
    mono = np.nan_to_num(x.mean(axis=0, keepdims=True))
    if samplerate != ANALYSIS_RATE and mono.shape[-1]:
        mono = resample(mono, samplerate, ANALYSIS_RATE)
    return np.ascontiguousarray(mono[0], dtype=np.float32)


def detect_key(chroma_mean: np.ndarray) -> tuple[str | None, float]:
    """(key name, confidence) of a mean chroma vector [12] (C first) by correlation with
    the rotated Krumhansl-Kessler profiles; (None, 0) for a flat chroma."""
    c = np.asarray(chroma_mean, dtype=np.float64)
    if c.shape != (12,) or not np.all(np.isfinite(c)) or np.std(c) < 1e-9:
        return None, 0.0
    best, best_r = None, -2.0
    for profile, names, mode in ((MAJOR_PROFILE, MAJOR_NAMES, "major"),
                                 (MINOR_PROFILE, MINOR_NAMES, "minor")):
        for tonic in range(12):
            r = float(np.corrcoef(c, np.roll(profile, tonic))[0, 1])
            if r > best_r:
                best, best_r = f"{names[tonic]} {mode}", r
    return best, max(0.0, min(1.0, best_r))


def _refined_bpm(beats: np.ndarray, bpm: float) -> float:
    """The tempo from a straight-line fit of the beat times: the tracker's own estimate is
    quantised to whole analysis frames (128 bpm reads as 129.2), the beats' mean spacing
    is not. Skipped beats are numbered by the estimate; falls back to `bpm` when the fit
    disagrees with it by more than 4%."""
    if beats.size < 4:
        return bpm
    index = np.round((beats - beats[0]) * bpm / 60.0)
    if np.ptp(index) < 3:
        return bpm
    slope = float(np.polyfit(index, beats, 1)[0])
    if slope <= 0 or abs(60.0 / slope - bpm) > 0.04 * bpm:
        return bpm
    return 60.0 / slope


def detect_tempo_key(audio: np.ndarray, samplerate: int) -> TempoKey:
    """Tempo (bpm), beat times (s) and key of `audio` [C, T] (or [T]) at `samplerate`.

    Only the first `MAX_SECONDS` are analysed, so the cost is bounded for any song.
    Silence or audio shorter than two seconds gives `TempoKey(None)`.
    """
    import librosa  # heavy: imported only when a song is analysed

    y = analysis_input(audio, samplerate)
    sr = ANALYSIS_RATE
    if y.size < _MIN_SECONDS * sr or float(np.sqrt(np.mean(y**2))) < _SILENCE_RMS:
        return TempoKey(None)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    bpm = float(np.atleast_1d(tempo)[0]) if np.size(tempo) else 0.0
    if not math.isfinite(bpm) or bpm <= 0 or len(beats) < 2:
        bpm_out: float | None = None
        beats = np.zeros(0)
    else:
        bpm_out = _refined_bpm(np.asarray(beats, dtype=np.float64), bpm)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=4096, hop_length=2048)
    key, confidence = detect_key(chroma.mean(axis=1))
    return TempoKey(bpm_out, np.asarray(beats, dtype=np.float64), key, confidence)


__all__ = ["TempoKey", "analysis_input", "detect_tempo_key", "detect_key", "ANALYSIS_RATE",
           "MAX_SECONDS"]
