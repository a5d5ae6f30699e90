"""The composed song's data types, and the draft a song is written into.

* `Role`: what a part does in the song ("rhythm", "lead", "lead vocal", "kit", ...); a
  `str` enum, so it compares, hashes and serialises like the plain string it replaced.
* `Note`, `Section`, `Part`, `Song`: a song as note lists, one `Part` per track; times
  are in beats (quarter notes) from the start of the song, `Song.seconds_at` converts.
  `Control`: a MIDI controller or pitch-wheel value at a time, the performance a part
  carries besides its notes (breath, expression, vibrato, scoops, slides: `expression.py`).
* `_Ctx` (a song under construction with its random generator: picks, chances, timing
  and velocity humanisation, swing) and `_add` (append a note to a part): what the part
  writers in `parts.py` and `melody.py` share.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .theory import BEATS_PER_BAR, MODES, NOTE_NAMES, Chord

if TYPE_CHECKING:
    from .styles import Style


class Role(enum.StrEnum):
    """What a part does in the song; the value is the string written to metadata."""

    KIT = "kit"  # the drum kit
    PERCUSSION = "percussion"  # shaker, tambourine, congas...
    BASS = "bass"
    RHYTHM = "rhythm"  # the electric guitar's rhythm part
    LEAD = "lead"  # solos and lead lines (guitar, synth lead)
    LEAD_VOCAL = "lead vocal"
    BACKING_VOCALS = "backing vocals"
    STABS = "stabs"  # wind: short chord hits
    SECTION = "section"  # wind: a horn section playing stabs together
    MELODY = "melody"  # wind: melodies and counter-lines
    PADS = "pads"  # wind: held chords
    PAD = "pad"  # other: strings, pads and organs holding chords
    ARPEGGIO = "arpeggio"
    STRUM = "strum"  # other: acoustic guitar
    KEYS = "keys"  # other: piano, electric piano, clavinet...


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Note:
    """One note: start and length in beats, MIDI pitch, velocity, and for the voice the
    word sung on it; `bend` (semitones) is reached by pitch bend during the note."""

    start: float
    length: float
    pitch: int
    velocity: int
    lyric: str = ""
    bend: float = 0.0


#: `Control.cc` of a pitch-wheel event (value -8192..8191, 0 = no bend)
PITCH_WHEEL = -1


@dataclass(frozen=True)
class Control:
    """A MIDI control change (`cc` 0..127, value 0..127) or pitch-wheel move (`cc` =
    PITCH_WHEEL, value -8192..8191) at `time` beats."""

    time: float
    cc: int
    value: int


@dataclass
class Section:
    """A run of bars with one role in the form and its own chords."""

    name: str  # intro, verse, pre, chorus, bridge, solo, outro, ending
    start_bar: int
    bars: int
    energy: float  # 0 (sparse) .. 1 (everything, busy)
    chords: list[tuple[float, float, Chord]] = field(default_factory=list)  # beats, abs.

    @property
    def start(self) -> float:
        return float(self.start_bar * BEATS_PER_BAR)

    @property
    def end(self) -> float:
        return float((self.start_bar + self.bars) * BEATS_PER_BAR)


@dataclass
class Part:
    """One track: what it is (label, stem, GM program) and what it plays."""

    name: str  # the instrument, as the track is labelled ("Alto Sax", "Lead Vocal")
    stem: str  # the stem it belongs to
    role: Role  # what it does in the song (a plain string is converted)
    program: int  # General MIDI program 0-127; -1 for the sung voice
    bank: int = 0  # 128 for drum kits
    style: str = ""  # how it plays ("walking", "power chords", ...)
    tone: str = ""  # guitar tone, voice, kit name...
    notes: list[Note] = field(default_factory=list)
    #: the performance besides the notes, sorted by time (empty: notes as written)
    controls: list[Control] = field(default_factory=list)
    bend_range: int = 2  # pitch-wheel range, semitones
    expression: str = ""  # what `controls` do, for the metadata ("" = none)

    def __post_init__(self) -> None:
        self.role = Role(self.role)

    @property
    def is_drum(self) -> bool:
        return self.bank == 128

    @property
    def sung(self) -> bool:
        return self.program < 0


@dataclass
class Song:
    """A composed song: global settings, form and parts."""

    seed: int
    seconds: float
    style: str
    bpm: float
    tonic: int
    mode: str
    swing: float
    sections: list[Section]
    parts: list[Part]
    voice: str = ""  # singer: "male" / "female"

    @property
    def key_name(self) -> str:
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"

    @property
    def beats(self) -> float:
        return self.sections[-1].end if self.sections else 0.0

    def seconds_at(self, beat: float) -> float:
        return beat * 60.0 / self.bpm

    def chord_at(self, beat: float) -> Chord:
        for section in self.sections:
            if section.start <= beat < section.end or section is self.sections[-1]:
                for start, length, chord in section.chords:
                    if start <= beat < start + length:
                        return chord
                if section.chords:
                    return section.chords[-1][2]
        return Chord(self.tonic, "maj")

    def scale(self) -> tuple[int, ...]:
        """Pitch classes of the key."""
        return tuple((self.tonic + i) % 12 for i in MODES[self.mode])

    def lyrics(self) -> list[str]:
        """The lead vocal's words, one line per phrase."""
        lead = next((p for p in self.parts if p.role == Role.LEAD_VOCAL), None)
        if lead is None:
            return []
        lines, line, last_end = [], [], None
        for note in lead.notes:
            if last_end is not None and note.start - last_end > 0.6 and line:
                lines.append(" ".join(line))
                line = []
            if note.lyric:
                line.append(note.lyric)
            last_end = note.start + note.length
        if line:
            lines.append(" ".join(line))
        return lines


# --------------------------------------------------------------------------------------
# Writing a song
# --------------------------------------------------------------------------------------

class _Ctx:
    """A song under construction with its random generator."""

    def __init__(self, song: Song, rng: np.random.Generator, style: Style) -> None:
        self.song, self.rng, self.style = song, rng, style

    def pick(self, seq: Sequence):
        return seq[int(self.rng.integers(len(seq)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def jitter(self, seconds: float = 0.006) -> float:
        """A small random timing offset, in beats."""
        return float(self.rng.normal(0.0, seconds)) * self.song.bpm / 60.0

    def vel(self, base: float, spread: float = 7.0) -> int:
        return int(np.clip(round(base + self.rng.normal(0, spread)), 1, 127))

    def swung(self, beat: float) -> float:
        """Delay off-beat eighths (swing) - by a fraction of an eighth."""
        s = self.song.swing
        if s <= 0:
            return beat
        frac = beat % 1.0
        if abs(frac - 0.5) < 1e-6:
            return beat + s * 0.5
        if self.style.groove not in ("shuffle", "swing") and (
                abs(frac - 0.25) < 1e-6 or abs(frac - 0.75) < 1e-6):
            return beat + s * 0.25
        return beat


def _add(part: Part, start: float, length: float, pitch: int, velocity: int,
         lyric: str = "", bend: float = 0.0) -> None:
    """Append a note to `part` (start and length in beats), skipping notes shorter than
    0.02 beats or outside MIDI's 0..127; the velocity is clipped to 1..127."""
    if length <= 0.02 or not 0 <= pitch <= 127:
        return
    part.notes.append(Note(max(0.0, float(start)), float(length), int(pitch),
                           int(np.clip(velocity, 1, 127)), lyric, bend))
