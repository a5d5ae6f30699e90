"""Music theory for the composer: notes, modes, chords, progressions and voicings.

Pitches are MIDI note numbers (60 = middle C), pitch classes are 0..11 (0 = C), times are
beats (quarter notes, `BEATS_PER_BAR` to a bar). A `Chord` is a root pitch class and a
quality (a key of `QUALITIES`); `_degree_chord` builds the chord on a scale degree of a
mode, `voicing` / `_guitar_voicing` turn pitch classes or a chord into the MIDI notes a
part plays (`voicing` is the one voice-leading rule, also used by `test_songs`), and
`_PROGRESSIONS` / `_BLUES` / `_JAZZ` are the scale-degree progressions songs draw from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BEATS_PER_BAR = 4
NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
         "dorian": (0, 2, 3, 5, 7, 9, 10), "mixolydian": (0, 2, 4, 5, 7, 9, 10)}
QUALITIES = {"maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
             "5": (0, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
             "m7b5": (0, 3, 6, 10), "sus4": (0, 5, 7), "sus2": (0, 2, 7), "6": (0, 4, 7, 9),
             "add9": (0, 4, 7, 14)}
_SUFFIX = {"maj": "", "min": "m", "dim": "dim", "aug": "+", "5": "5", "7": "7", "maj7": "maj7",
           "min7": "m7", "m7b5": "m7b5", "sus4": "sus4", "sus2": "sus2", "6": "6",
           "add9": "add9"}


@dataclass(frozen=True)
class Chord:
    """A chord: absolute root pitch class and quality (a key of QUALITIES)."""

    root: int
    quality: str

    @property
    def intervals(self) -> tuple[int, ...]:
        return QUALITIES[self.quality]

    @property
    def pcs(self) -> tuple[int, ...]:
        """Pitch classes, root first."""
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def name(self) -> str:
        return NOTE_NAMES[self.root] + _SUFFIX[self.quality]


# --------------------------------------------------------------------------------------
# Progressions (scale degrees, 0-based)
# --------------------------------------------------------------------------------------

_PROGRESSIONS = {  # scale degrees (0-based) per bar-chord
    "major": ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 5, 4),
              (0, 0, 3, 4), (3, 4, 0, 5), (0, 2, 3, 4), (1, 4, 0, 0), (3, 0, 4, 5)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4),
              (0, 2, 6, 3), (5, 6, 0, 0), (0, 3, 0, 4)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 1, 0, 6), (0, 3, 6, 0), (0, 0, 3, 3)),
    "mixolydian": ((0, 6, 3, 0), (0, 6, 3, 3), (0, 3, 6, 0), (0, 0, 6, 3), (3, 6, 0, 0)),
}
_BLUES = ((0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4), (0, 3, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4),
          (0, 3, 0, 0, 3, 3, 0, 0, 4, 4, 0, 0))
_JAZZ = ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4), (0, 3, 1, 4), (3, 4, 2, 5))


# --------------------------------------------------------------------------------------
# Chords and voicings
# --------------------------------------------------------------------------------------

def _degree_chord(tonic: int, mode: str, degree: int, sevenths: bool) -> Chord:
    scale = MODES[mode]
    root = scale[degree % 7]
    third = (scale[(degree + 2) % 7] - root) % 12
    fifth = (scale[(degree + 4) % 7] - root) % 12
    seventh = (scale[(degree + 6) % 7] - root) % 12
    if fifth == 6:
        quality = "m7b5" if sevenths else "dim"
    elif fifth == 8:
        quality = "aug"
    elif third == 3:
        quality = "min7" if sevenths else "min"
    else:
        quality = ("maj7" if seventh == 11 else "7") if sevenths else "maj"
    return Chord((tonic + root) % 12, quality)


def _near(pc: int, target: int, lo: int, hi: int) -> int:
    """The MIDI note of pitch class `pc` nearest `target` within [lo, hi]."""
    options = [m for m in range(lo, hi + 1) if m % 12 == pc % 12]
    if not options:
        return int(np.clip(target, lo, hi))
    return min(options, key=lambda m: (abs(m - target), m))


def _voicing(chord: Chord, prev: Sequence[int] | None, lo: int, hi: int, n: int) -> list[int]:
    """`n` notes of `chord` within [lo, hi], close to the previous voicing."""
    return voicing(chord.pcs, prev, lo, hi, n)


def voicing(pcs: Sequence[int], prev: Sequence[int] | None, lo: int, hi: int,
            n: int) -> list[int]:
    """`n` notes of pitch classes `pcs` (root first) within [lo, hi], spanning at most 19
    semitones, centred near the previous voicing and moving little from it (voice
    leading); a missing one of the first three pitch classes costs 6 semitones."""
    cands = [m for m in range(lo, hi + 1) if m % 12 in pcs]
    if len(cands) < n:
        return cands
    best, best_cost = cands[:n], math.inf
    center = sum(prev) / len(prev) if prev else (lo + hi) / 2
    for i in range(len(cands) - n + 1):
        notes = cands[i:i + n]
        if notes[-1] - notes[0] > 19:
            continue
        have = {m % 12 for m in notes}
        missing = len([p for p in pcs[:3] if p not in have])
        cost = abs(sum(notes) / n - center) + 6 * missing
        if prev:
            cost += 0.5 * sum(min(abs(a - b) for b in prev) for a in notes)
        if cost < best_cost:
            best, best_cost = notes, cost
    return list(best)


def _guitar_voicing(chord: Chord, low: int = 40) -> list[int]:
    """A barre-chord-like voicing: root in [low, low + 11], then fifth, octave (or the
    seventh), third, fifth and double octave above it, up to six notes below G5."""
    root = low + (chord.root - low) % 12
    iv = chord.intervals
    if len(iv) == 2:  # power chord
        return [root, root + iv[1], root + 12]
    fifth = iv[2] if len(iv) > 2 else 7
    middle = iv[3] if len(iv) > 3 and iv[3] < 12 else 12
    notes = [root, root + fifth, root + middle, root + 12 + iv[1], root + 12 + fifth,
             root + 24]
    return [m for m in notes if m <= 79]


__all__ = ["BEATS_PER_BAR", "NOTE_NAMES", "MODES", "QUALITIES", "Chord"]
